# pelosync: `docker build -t pelosync .`, then see docs/deployment.md.
#
# Every install step lives in deploy/install.sh, which CI also runs in a fresh venv and starts
# the service from (there is no container engine in CI): change the steps there, not here.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a venv at /opt/venv from the hash-checked lock, then pelosync's own wheel -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, alone: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
COPY deploy/install.sh deploy/build-requirements.lock ./deploy/
RUN ./deploy/install.sh --deps-only /opt/venv
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
RUN ./deploy/install.sh /opt/venv

# --- runtime: the venv, two small scripts, a non-root user, nothing else ------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="pelosync" \
      org.opencontainers.image.description="Syncs Peloton workouts to webhooks, files and fitness services" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it and volumes can be chowned.
RUN groupadd --system --gid 10001 pelosync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin pelosync \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/pelosync-entrypoint
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/pelosync-healthcheck

# Production defaults: a secret key is required (PELOSYNC_SECRET_KEY), listen on all interfaces,
# JSON logs on stderr. PELOSYNC_MIGRATE=false makes `serve` skip migrations (entrypoint.sh).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PELOSYNC_ENV=production \
    PELOSYNC_DATA_DIR=/data \
    PELOSYNC_HOST=0.0.0.0 \
    PELOSYNC_PORT=8080 \
    PELOSYNC_LOG_FORMAT=json \
    PELOSYNC_MIGRATE=true

# SQLite database, folder exports and (development only) a generated key live here.
VOLUME ["/data"]
# A neutral working directory: pelosync reads a .env file from here if one is mounted.
WORKDIR /app
EXPOSE 8080
USER 10001:10001

# Liveness only: /readyz (database, schema, scheduler) belongs to load balancers and Kubernetes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["pelosync-healthcheck", "/healthz"]

# `serve` drains work in flight for up to 25 s after SIGTERM: give `docker stop` -t 30 or more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["pelosync-entrypoint"]
CMD ["serve"]
