# Chit images, in three stages (docker-compose.yml builds the last two):
#   build   every dependency; compiles the contracts (the SDK's ABIs) and builds the SDK, the command
#           line (cli/, for running chit in the build or deploy image) and the hub.
#   deploy  the one-shot deploy job: Hardhat runs deploy/deploy.ts, so it keeps the dev dependencies.
#   hub     the hub service, the default target: production dependencies, the built SDK and hub.
# Both images run as the unprivileged user node. Node 24 is an LTS line (maintained until April 2028);
# the exact tag makes a rebuild use the same Node.

FROM node:24.19.0-bookworm-slim AS build
WORKDIR /app
# The workspaces the hub needs, and the command line; npm ci leaves out the others (x402, tunnel),
# whose package.json is not there.
COPY package.json package-lock.json ./
COPY sdk/package.json sdk/
COPY cli/package.json cli/
COPY hub/package.json hub/
COPY dashboard/package.json dashboard/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build:contracts && npm run build -w sdk && npm run build -w cli && npm run build -w hub && npm run build -w dashboard

FROM build AS deploy
# deployments/ holds the deploy job's record of what it deployed (a volume in docker-compose.yml), so
# that it deploys once per chain; it is the only folder the job writes.
RUN mkdir -p deployments && chown node:node deployments
USER node
# The deployer's key comes from the file DEPLOYER_KEY_FILE names (a secret), else from DEPLOYER_KEY.
CMD ["sh", "-c", "if [ -n \"$DEPLOYER_KEY_FILE\" ]; then DEPLOYER_KEY=\"$(cat \"$DEPLOYER_KEY_FILE\")\" || exit 1; export DEPLOYER_KEY; fi; exec node_modules/.bin/hardhat run --no-compile deploy/deploy.ts --network custom"]

FROM node:24.19.0-bookworm-slim AS hub
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json sdk/
COPY hub/package.json hub/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/sdk/dist sdk/dist
COPY --from=build /app/hub/bin hub/bin
COPY --from=build /app/hub/dist hub/dist
# The dashboard's static build, which the hub serves at /dashboard (hub/src/dashboard).
COPY --from=build /app/dashboard/dist dashboard/dist
USER node
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=20 CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "hub/bin/chit-hub.js", "start"]
