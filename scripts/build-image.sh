#!/usr/bin/env bash
# Builds the Lodestone image from the Dockerfile with buildah, on the local base images of
# scripts/build-base-image.sh (built first when missing). Root; vfs storage; chroot isolation.
#   scripts/build-image.sh [IMAGE]      default IMAGE: localhost/lodestone:<package.json version>
# Use the image elsewhere: buildah --storage-driver vfs push IMAGE docker-archive:/tmp/lodestone.tar
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)"
image="${1:-localhost/lodestone:$version}"
bash scripts/build-base-image.sh all
mounts=()
# A TLS-intercepting proxy's CA (in the host's bundle) must be trusted by `npm ci` in the build stage.
host_ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$host_ca" ] && mounts=(-v "$host_ca:$host_ca:ro")
started=$SECONDS
buildah --storage-driver vfs bud --isolation chroot --layers=false \
  --build-arg BASE="${LODESTONE_BASE_IMAGE:-localhost/lodestone-base:bookworm-node24}" \
  --build-arg BUILD_BASE="${LODESTONE_BUILD_IMAGE:-localhost/lodestone-build:bookworm-node24}" \
  "${mounts[@]}" -t "$image" . >&2
echo "build-image: $image built in $((SECONDS - started)) s" >&2
