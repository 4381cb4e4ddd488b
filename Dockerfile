# The Chit hub image: contracts compiled (for the ABIs and the deploy job), SDK and hub built.
FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json sdk/
COPY hub/package.json hub/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build:contracts && npm run build -w sdk && npm run build -w hub
EXPOSE 8080
CMD ["node", "hub/dist/main.js", "start"]
