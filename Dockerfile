# Production image: taskgate's bundle (dist/) and the few packages it loads at run time, on the
# current Node.js LTS, run as the `node` user.
#
# No stage runs install scripts (--ignore-scripts): the only ones in the tree are esbuild's (tsx's,
# which would download a binary the build never uses: it bundles with esbuild-wasm) and the
# embedded PostgreSQL's (an optional dependency, for development only, never installed here).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=optional --ignore-scripts
COPY tsconfig.json tsconfig.build.json mikro-orm.config.ts ./
COPY scripts/build.mjs ./scripts/
COPY src ./src
COPY tasks ./tasks
RUN npm run build

# The packages the bundle loads at run time (package.json's dependencies), installed in a stage of
# their own: the final stage runs no npm, so it has no npm cache or logs and no root-owned
# /tmp/node-compile-cache, and this layer is reused as long as the lock does not change.
FROM node:24-bookworm-slim AS runtime-packages
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev --omit=optional --ignore-scripts

FROM node:24-bookworm-slim
# `docker exec <container> taskgate <command>`, as the node user: the package's own bin, which
# runs dist/ where there is no src/.
RUN ln -s /app/bin/taskgate.js /usr/local/bin/taskgate
ENV NODE_ENV=production
# Docker stops a container with SIGKILL 10 s after SIGTERM (`docker stop`, compose): taskgate's
# shutdown takes at most SHUTDOWN_GRACE_MS + 8 s (src/cli/serve.ts), so a run in flight gets 1 s
# to finish before it is interrupted and recorded so, within 9 s. Give runs longer with both
# `-e SHUTDOWN_GRACE_MS=20000` and `docker run --stop-timeout 30` (docs/deploy.md).
ENV SHUTDOWN_GRACE_MS=1000
WORKDIR /app
COPY --from=runtime-packages /app/node_modules ./node_modules
# The built-in tasks that run: every one (mount another taskgate.config.json, or set
# TASKGATE_CONFIG, to choose).
COPY package.json taskgate.config.json ./
COPY bin ./bin
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000
# The slim image has no curl: Node's own fetch asks /healthz on the port taskgate listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 3000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself receives the platform's SIGTERM: no npm or shell in between.
CMD ["node", "dist/src/cli/main.js", "serve"]
