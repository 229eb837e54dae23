# First version: the deployment issue finishes it (lock file, healthcheck, migrations at start).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY migrations ./migrations
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pelosync
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini /app/alembic.ini
COPY migrations /app/migrations
COPY deploy/entrypoint.sh /usr/local/bin/pelosync-entrypoint
ENV PATH=/opt/venv/bin:$PATH PELOSYNC_DATA_DIR=/data PYTHONUNBUFFERED=1
WORKDIR /app
RUN mkdir -p /data && chown pelosync /data
USER pelosync
VOLUME ["/data"]
ENTRYPOINT ["pelosync-entrypoint"]
CMD ["convert", "--format", "json"]
