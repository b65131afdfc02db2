# Sluice. Default: the embedded node — gateway (SMTP 10025, LMTP 10024), outbox worker and
# web app (8025) in one process on SQLite. Split nodes run `sluice serve --role …` on one
# PostgreSQL (docker-compose.yml, docs/deploy.md).
# Not built in CI (no Docker engine there); build with `docker build -t sluice .`.
FROM python:3.11-slim

RUN useradd --system --home-dir /var/lib/sluice --create-home sluice
WORKDIR /opt/sluice
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .

USER sluice
ENV SLUICE_DATA_DIR=/var/lib/sluice \
    SLUICE_LISTEN=0.0.0.0:10025,lmtp://0.0.0.0:10024 \
    SLUICE_WEB_LISTEN=0.0.0.0:8025
VOLUME ["/var/lib/sluice"]
# 8080: the health listener of nodes without the web role (SLUICE_HEALTH_LISTEN).
EXPOSE 10025 10024 8025 8080
# SIGTERM drains: listeners close at once, transactions under way get SLUICE_SHUTDOWN_GRACE
# seconds (30). Give `docker stop` more than that: `docker stop -t 45` / stop_grace_period.
STOPSIGNAL SIGTERM
# /healthz answers 503 while a check fails or the node drains; urlopen raises on it.
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://' + (os.environ.get('SLUICE_HEALTH_LISTEN') or os.environ['SLUICE_WEB_LISTEN']).replace('0.0.0.0', '127.0.0.1') + '/healthz', timeout=5)"]
# Set SLUICE_ALLOWED_NETWORKS to the networks of the MTAs that relay through Sluice, and
# SLUICE_UPSTREAM to the next hop; without an upstream, mail goes to maildirs in the volume.
CMD ["sluice", "serve"]
