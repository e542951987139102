# tg-janitor: `docker build -t tg-janitor .`, then
#   docker run -d --name tg-janitor -v tg-janitor-data:/data -p 127.0.0.1:8080:8080 --env-file .env \
#     --stop-timeout 20 tg-janitor
# docker-compose.yml runs it with PostgreSQL. test/deploy-files.test.ts checks this file's shape (no Docker engine
# runs where the project is developed and tested, so it is read, not built, there).

# ---- build: dependencies (the native addon compiled), the TypeScript compiled to dist/, then dev dependencies dropped
FROM node:20-bookworm-slim AS build
# better-sqlite3 is a native addon: its install fetches a prebuilt binary when one exists for this Node and platform, and
# otherwise compiles it with node-gyp, which needs these. They stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts off: `prepare` builds the sources, which are not here yet, so this layer stays cached while only they
# change. The one install script the package needs (better-sqlite3's binary) runs right after.
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
# Everything else (.dockerignore keeps node_modules, dist, data and secrets out): the build's own tsconfig files
# included, whatever they are named.
COPY . .
RUN npm run build && npm prune --omit=dev

# ---- runtime: production dependencies, the compiled code, no compiler, not root
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Owned by root, read by `node`: the service cannot rewrite its own code.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# SQLite and backups live on the volume; a new named volume takes this folder's owner, so `node` can write it.
RUN mkdir -p /data/backups && chown -R node:node /data
VOLUME ["/data"]
# HTTP_HOST=0.0.0.0: inside a container loopback is the container's own, and `-p` or a platform's router must reach
# it. A platform's PORT gives the port (HTTP_PORT, when set, wins).
# SHUTDOWN_TIMEOUT_S=8: `docker stop` (and compose without stop_grace_period) sends SIGKILL 10 s after SIGTERM; with
# 8 s for the runs and broadcast copies in flight, the closing of HTTP and the database fits before it, so a copy
# already asked of Telegram is recorded for deletion instead of lost. The default 30 would be cut short. A stop
# while Telegram does not answer can take up to 5 s more (the bots' own stop): docker-compose.yml gives 20 s.
ENV DATABASE_URL=sqlite:/data/tg-janitor.db \
    BACKUP_DIR=/data/backups \
    HTTP_HOST=0.0.0.0 \
    SHUTDOWN_TIMEOUT_S=8
USER node
EXPOSE 8080
# No curl in a slim image: Node's own fetch asks /healthz (200 healthy, 503 not), on the port the service chose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form, node itself as PID 1 (no shell, no npm in between): SIGTERM reaches the service, which stops cleanly.
CMD ["node", "--max-old-space-size=512", "--max-semi-space-size=4", "bin/tg-janitor.js", "start"]
