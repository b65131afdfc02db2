# Sluice, embedded default: gateway (SMTP 10025, LMTP 10024) and web app (8025) on SQLite.
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
EXPOSE 10025 10024 8025
# Set SLUICE_ALLOWED_NETWORKS to the networks of the MTAs that relay through Sluice, and
# SLUICE_UPSTREAM to the next hop; without an upstream, mail goes to maildirs in the volume.
CMD ["sluice", "serve"]
