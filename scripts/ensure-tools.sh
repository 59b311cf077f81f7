#!/usr/bin/env bash
# Installs the Debian tools the tests use as independent observers (kubectl, arping, ndisc6, tcpdump, tshark,
# iproute2), the routers of the BGP lab (FRR with frr-reload.py, BIRD 2) and the image builders (buildah,
# debootstrap). Only what is missing is installed; without root it only reports, and the tests that need a missing
# tool skip with a message naming it.
set -uo pipefail
declare -A pkg_of=(
  [kubectl]=kubernetes-client [arping]=arping [ndisc6]=ndisc6 [tcpdump]=tcpdump [tshark]=tshark
  [ip]=iproute2 [buildah]=buildah [debootstrap]=debootstrap [openssl]=openssl
  [vtysh]=frr [frr-reload.py]=frr-pythontools [bird]=bird2
)
missing=()
for tool in "${!pkg_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/usr/lib/frr/$tool" ] \
    || missing+=("${pkg_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-tools: not root, cannot install: ${missing[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "ensure-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# frr and bird2 start their daemons from postinst (invoke-rc.d); the lab starts its own inside namespaces, so
# deny service starts for the length of the install (policy-rc.d exit 101) unless the host already has a policy.
own_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
fi
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "ensure-tools: apt-get could not install ${missing[*]} (tests needing them will skip)" >&2
[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
exit 0
