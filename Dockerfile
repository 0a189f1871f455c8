# tollgate's image (SPEC §8). Build: docker build -t tollgate .
# Run:   docker run --rm -p 7080:7080 -p 7081:7081 -v "$PWD/tollgate.yaml:/etc/tollgate/tollgate.yaml:ro" \
#          -e TOLLGATE_CONFIG=/etc/tollgate/tollgate.yaml tollgate
# PID 1 is tini (Debian's package, its static build), which hands every signal to node. PID 1
# gets no default signal action: while node itself starts — before any JavaScript can install a
# handler, tens to hundreds of milliseconds — a SIGTERM sent to node as PID 1 is lost, and
# `docker stop` or a pod deleted that early waits its whole timeout for SIGKILL (exit 137). Under
# tini such a SIGTERM ends node by its default action, and `-e 143` reports that as the clean exit
# it is (0); from the moment tollgate's handlers are in place (before its modules load) it exits 0
# itself.
# No --init is needed in `docker run`.
# No `# syntax=` line: it would make every BuildKit build contact Docker Hub for the frontend.

ARG NODE_IMAGE=node:24-bookworm-slim

# 1. Build: every dependency (TypeScript among them), then compile src/ to dist/.
FROM ${NODE_IMAGE} AS build
# tini for the runtime stage, installed here so that apt's lists and caches stay out of the image.
RUN apt-get update && apt-get install -y --no-install-recommends tini
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# 2. Runtime: production dependencies only, the compiled code, a non-root numeric user.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# npm is needed for this one install only: remove it (and corepack/yarn) so the image carries no
# package manager. Files stay owned by root, so the running user cannot change them.
# npm also leaves Node's module compile cache in /tmp (root's, useless to uid 10001).
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /root/.npm /tmp/node-compile-cache /tmp/*
COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /app/dist ./dist
# A numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
# 7080: the proxy (TOLLGATE_LISTEN); 7081: /metrics, /healthz, /readyz (TOLLGATE_ADMIN_LISTEN).
EXPOSE 7080 7081
STOPSIGNAL SIGTERM
# Exec form, no shell in between: tini is PID 1 and forwards every signal (SIGHUP too) to node.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "node", "dist/cli.js"]
