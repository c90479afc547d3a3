# `hybrid serve` in a container: the core install (no test or Spark extras) and a saved model
# folder mounted read-only.
#
#   docker build -t hybrid .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/artifacts/recommender:/model:ro" hybrid
#
# Arguments after the image name go to `hybrid serve` (e.g. --allowed-host shop.example.com,
# --admin-token-file /run/secrets/hybrid-admin). The server binds 0.0.0.0 inside the container;
# publish the port on loopback, as above, unless it is meant to be reached from elsewhere.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY hybrid ./hybrid
COPY pipelines ./pipelines
RUN pip install . && rm -rf /src && useradd --create-home --uid 10001 hybrid
WORKDIR /home/hybrid
USER hybrid
EXPOSE 8000
VOLUME /model
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"
ENTRYPOINT ["hybrid", "serve", "--model", "/model", "--host", "0.0.0.0", "--port", "8000"]
