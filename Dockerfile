# syntax=docker/dockerfile:1
# driftline: one slim, non-root image for the worker, the producer and every CLI command.
#   docker build -t driftline:local .
#   docker run --rm driftline:local --help
# Every dependency ships a manylinux wheel for CPython 3.11 on x86_64, so no compiler is needed.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# .dockerignore keeps tests, caches, secrets and local state out of the build context.
COPY . .
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/driftline --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Streaming inference and drift monitor (Kafka, Faust, River, Redis)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DRIFTLINE_METRICS_HOST=0.0.0.0 \
    DRIFTLINE_METRICS_PORT=9464
RUN groupadd --system --gid 10001 driftline \
 && useradd --system --uid 10001 --gid driftline --home-dir /home/driftline --create-home --shell /usr/sbin/nologin driftline
COPY --from=build /opt/venv /opt/venv
# Faust keeps its per-app data directory under DRIFTLINE_STATE_DIR (default $HOME/.local/state/driftline): the
# home folder must be writable by the user.
WORKDIR /home/driftline
# Numeric, so Kubernetes runAsNonRoot can check it without reading /etc/passwd (hadolint DL3066).
USER 10001:10001
# /metrics (Prometheus). In a container it binds 0.0.0.0; docker-compose publishes it to no host address.
EXPOSE 9464
# Healthy while /metrics answers; the port comes from the same variable the worker reads.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRIFTLINE_METRICS_PORT', '9464') + '/metrics', timeout=4)"]
ENTRYPOINT ["driftline"]
CMD ["worker"]
