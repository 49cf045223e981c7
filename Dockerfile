# reef container image. Node 22 LTS here; the code runs on Node 20.17+ as well.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
# better-sqlite3 ships prebuilt binaries; the toolchain is only a fallback.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
# The server runs as one esbuild bundle on plain node (less memory than tsx at run time).
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    REEF_HOST=0.0.0.0 \
    REEF_PORT=8080 \
    REEF_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=deps /app/dist ./dist
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
RUN groupadd --system reef && useradd --system --gid reef --home /data reef \
    && mkdir -p /data && chown reef:reef /data
USER reef
VOLUME ["/data"]
EXPOSE 8080
# The port the server listens on, whatever REEF_PORT the container is given.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.REEF_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# V8's young generation capped at 1 MiB per semispace: a 2 GiB upload peaks at ~122 MiB RSS
# instead of ~170 (BENCHMARKS.md, "Memory: a 2 GiB upload"); the same flag as npm start.
ENTRYPOINT ["node", "--max-semi-space-size=1", "dist/cli/main.mjs"]
CMD ["serve"]
