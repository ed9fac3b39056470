# One image for every Sluice process (web, worker, watcher); the command picks the process.
# Runtime only: requirements.lock (the [project] dependencies, checked against their hashes) and
# Sluice itself, in a virtualenv at /opt/sluice; no test or lint tools, no source tree, no compiler.
#
# BASE is any Debian-like image with python3 (3.11) and its venv module: the public slim image by
# default; tests/ship/test_image.py builds it on a plain Debian made by debootstrap.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# pip trusts the system's CA bundle rather than its own copy, so that a build behind a
# TLS-inspecting proxy works when the build mounts that machine's /etc/ssl/certs over it.
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/sluice
COPY requirements.lock /tmp/requirements.lock
# Wheels only: nothing is compiled, so the build needs no compiler and gets what the lock hashed.
RUN /opt/sluice/bin/pip install --require-hashes --only-binary :all: -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY app /src/app
COPY workers /src/workers
COPY integrations /src/integrations
RUN /opt/sluice/bin/pip install --no-deps /src

# The image: the base plus the virtualenv (the build stage's sources and caches stay behind).
FROM ${BASE}
ENV PATH=/opt/sluice/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/sluice /opt/sluice
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sluice
USER 10001
WORKDIR /srv/sluice
EXPOSE 8000
# The web process's liveness. Worker and watcher containers serve no HTTP: docker-compose.yml
# gives them their liveness check instead (Kubernetes ignores it; deploy/sluice.yaml has its own probes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# gunicorn with gevent workers, header deadline, JSON errors (app/web/serving.py).
CMD ["sluice", "serve", "--bind", "0.0.0.0:8000"]
