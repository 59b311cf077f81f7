# Lodestone image: `lodestone` on Node 24, production dependencies and the native AF_PACKET addon only.
# The base images are build arguments; where no registry is reachable, scripts/build-base-image.sh builds both
# locally from Debian bookworm + the Node 24 of the npm `node` package. Any Debian-based Node 24 image works
# (e.g. BASE=node:24-bookworm-slim BUILD_BASE=node:24-bookworm).
#   buildah bud --storage-driver vfs --isolation chroot -t localhost/lodestone:0.1.0 .
# Behind a TLS-intercepting proxy, mount its CA bundle for `npm ci`:
#   -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
ARG BASE=localhost/lodestone-base:bookworm-node24
ARG BUILD_BASE=localhost/lodestone-build:bookworm-node24

# Build: all dependencies (node-gyp compiles the addon in the `install` script), the daemon compiled to dist/
# (`npm run build`: no TypeScript stripper loaded at run time; the demo, the embedded API server and the lab are
# development tools and stay out), then production dependencies only.
FROM ${BUILD_BASE} AS build
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm_config_cafile=/etc/ssl/certs/ca-certificates.crt \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /src
COPY . .
RUN npm ci \
 && npm run build \
 && npm prune --omit=dev \
 && mkdir -p /out config \
 && cp -a package.json bin dist config node_modules /out/ \
 && if [ -d build/Release ]; then mkdir -p /out/build/Release && cp build/Release/*.node /out/build/Release/; fi

# Runtime: the base's own `node` (the npm `node` devDependency was pruned), no compiler, no npm.
FROM ${BASE}
COPY --from=build /out /opt/lodestone
RUN ln -s /opt/lodestone/bin/lodestone.js /usr/local/bin/lodestone
ENV NODE_ENV=production
WORKDIR /opt/lodestone
# Non-root by default. The speaker needs NET_RAW, which Kubernetes grants only to UID 0, so the Helm chart runs
# the speaker as UID 0 with every other capability dropped (docs/install.md, "Security context").
USER 65532:65532
ENTRYPOINT ["lodestone"]
CMD ["--help"]
