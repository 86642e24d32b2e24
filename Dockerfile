# syntax=docker/dockerfile:1
# One image for the gateway, the demo services and the load generator (different commands; see
# compose.yaml). The Node.js version matches the repository's pinned `node` devDependency.

FROM node:24.21.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. No install scripts: nothing at runtime needs one, and the `node`
# devDependency's script would download a second Node.js.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The image's own node runs tsc (node_modules/.bin/node is a stub without install scripts).
RUN node node_modules/typescript/bin/tsc -p tsconfig.json

FROM node:24.21.0-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
ENTRYPOINT ["node"]
# The gateway, with the OpenTelemetry SDK loaded before any gateway module.
CMD ["--max-semi-space-size=16", "--no-allocation-site-pretenuring", "--import", "./dist/src/telemetry/register.js", "dist/src/main.js", "--config", "/etc/gateway/gateway.yaml"]
