# The LoreGuard image: workers, dashboard and CLI (`loreguard ...`); compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestration ./orchestration
COPY workers ./workers
COPY data ./data
COPY dashboard ./dashboard
RUN pip install .

# Not in the package: the dashboard's pages and Streamlit settings, run from /app by `loreguard dashboard`.
COPY pages ./pages
COPY .streamlit ./.streamlit

RUN useradd --system --create-home --home-dir /var/lib/loreguard loreguard
USER loreguard
ENV LOREGUARD_STATE_DIR=/var/lib/loreguard

EXPOSE 8501
CMD ["loreguard", "worker"]
