# Production image: compiled JavaScript on the current Node.js LTS, no dev dependencies, no
# embedded PostgreSQL (an optional dependency, for development only).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=optional
COPY tsconfig.json tsconfig.build.json mikro-orm.config.ts ./
COPY scripts/build.mjs ./scripts/
COPY src ./src
COPY tasks ./tasks
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev --omit=optional && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The built-in tasks that run: every one (mount another taskgate.config.json, or set TASKGATE_CONFIG, to choose).
COPY taskgate.config.json ./
USER node
EXPOSE 3000
# The slim image has no curl: Node's own fetch asks /healthz on the port taskgate listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 3000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself receives the platform's SIGTERM: no npm or shell in between.
CMD ["node", "dist/src/cli/main.js", "serve"]
