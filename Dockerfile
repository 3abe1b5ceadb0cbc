# syncd: the daemon and the connector plugins that ship with it, as a container.
#
#   docker build -t syncd .            (SQLite; a PostgreSQL store: --build-arg EXTRAS=postgresql)
#   docker run -d --name syncd -v "$PWD/config:/config:ro" -v syncd-data:/data \
#       -p 127.0.0.1:8765:8765 --stop-timeout 30 syncd
#
# docs/docker.md has a compose file with secrets, and how to add a third-party plugin
# in a derived image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: one virtualenv with syncd and the bundled plugins -----------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# strip, for the wheels' native modules below (this stage only)
RUN apt-get update \
    && apt-get install -y --no-install-recommends "binutils=2.40-*" \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncd ./syncd
COPY plugins ./plugins
# syncd's optional dependencies, comma-separated: "postgresql" for a PostgreSQL store
# (psycopg, cryptography: +30 MB; docs/scaling.md). The default image is SQLite only.
ARG EXTRAS=""
# each plugin is its own distribution, installed as a third-party plugin would be; pip and
# setuptools leave the runtime virtualenv (25 MB): a derived image gets pip back with
# `python -m ensurepip` (docs/docker.md). The wheels' native modules carry their symbol tables
# (7.7 MB; 10.7 MB with the postgresql extra): stripped, as Debian strips its own.
RUN python -m venv /opt/syncd \
    && /opt/syncd/bin/pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" plugins/*/ \
    && /opt/syncd/bin/pip uninstall --yes --quiet setuptools pip \
    && find /opt/syncd -type f -name '*.so*' -exec strip --strip-unneeded {} + \
    && /opt/syncd/bin/python -m compileall -q /opt/syncd/lib

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# tini as PID 1: reaps zombies and passes SIGTERM on (syncd also stops on it as PID 1 itself)
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=0.19.*" \
    && rm -rf /var/lib/apt/lists/*

# a fixed numeric user, so that volume ownership is predictable (chown 10001 on the host, or
# PUID/PGID below)
RUN groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin syncd \
    && mkdir -p /config /data \
    && chown 10001:10001 /data \
    && chmod 0700 /data

COPY --from=build /opt/syncd /opt/syncd
COPY contrib/docker/entrypoint.sh /usr/local/bin/syncd-entrypoint

ENV PATH=/opt/syncd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SYNCD_CONFIG=/config \
    SYNCD_STATE_DIR=/data \
    SYNCD_API_LISTEN=0.0.0.0:8765

# /config: syncd.toml and syncs/*.toml (read-only is fine); /data: the database, OAuth tokens,
# the API token
VOLUME ["/config", "/data"]
EXPOSE 8765
WORKDIR /data

# /healthz: the loop answers, the database is reachable, the scheduler runs. A sync that fails
# or waits for authorisation does not make the container unhealthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["syncd", "healthcheck"]

# syncd stops within daemon.shutdown_deadline (25 s by default) after SIGTERM: give it
# `docker run --stop-timeout 30` / compose `stop_grace_period: 30s` (Docker's default is 10 s)
STOPSIGNAL SIGTERM
# The container starts as root only for the entrypoint: it hands /data to PUID:PGID (default
# 10001:10001, linuxserver.io style) and runs syncd as them with setpriv (util-linux), no
# capabilities, no new privileges. With `--user UID:GID` it runs syncd as that user instead.
ENTRYPOINT ["tini", "--", "syncd-entrypoint"]
CMD ["run"]
