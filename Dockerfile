# Babysitter in a container: the web app by default, the CLI by command, runs kept in a volume.
#
#   docker build -t babysitter .
#   docker run --rm -p 8501:8501 -v babysitter-home:/data babysitter
#   docker run --rm -v babysitter-home:/data babysitter babysitter demo
#
# The image holds Babysitter the way `pip install .` installs it (the `babysitter` command, and
# `python -m training` / `python -m tuner`), not a source checkout on the import path: what a user
# installs is what the container runs.
#
# BASE_IMAGE picks the base: python:3.12-slim by default; any Debian or Ubuntu image works, with
# or without Python (one without gets the distribution's python3, which must be 3.11 to 3.13).
# CUDA variant: CUDA=1 adds tensorflow[and-cuda], the CUDA 12 / cuDNN 9 libraries TensorFlow is
# built against, as pip wheels (ptxas included, which XLA needs); the host needs only the NVIDIA
# driver and the NVIDIA Container Toolkit:
#   docker build --build-arg CUDA=1 -t babysitter:cuda .
#   docker run --rm --gpus all -p 8501:8501 -v babysitter-home:/data babysitter:cuda
# An nvidia/cuda Ubuntu 24.04 base is accepted too (BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-
# ubuntu24.04; apt adds its python3), but still needs CUDA=1: runtime images have no ptxas.
# Behind a TLS-intercepting proxy, hand pip its CA bundle as a BuildKit secret (never stored in a
# layer); without the secret the build uses the base image's CA certificates:
#   DOCKER_BUILDKIT=1 docker build --secret id=pip_cert,src="$PIP_CERT" -t babysitter .
# No `# syntax=` line on purpose: that would pull a frontend image from a registry; the builder's
# own Dockerfile frontend (Docker 20.10+) already knows RUN --mount.

ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
# Non-empty: also install TensorFlow's CUDA libraries (see above).
ARG CUDA=""

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A base without Python (nvidia/cuda) gets the distribution's python3 and venv. Every base then
# gets the same virtual environment first on PATH, so `python` and `pip` mean the same thing on
# python:3.12-slim, Debian and Ubuntu alike.
# DL3008 (pin apt versions) is ignored: the versions available depend on which base was chosen,
# and a pin for one distribution release fails on every other.
# hadolint ignore=DL3008
RUN if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}"

# Requirements before the code, so that a code change does not reinstall TensorFlow. With CUDA,
# the same TensorFlow version again with its and-cuda extra.
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && if [ -n "${CUDA}" ]; then \
        tf="$(python -c 'import importlib.metadata as m; print(m.version("tensorflow"))')" \
        && pip install --no-cache-dir "tensorflow[and-cuda]==${tf}"; \
    fi \
    && rm /tmp/requirements.txt

# A non-root user that owns only the run store; the code stays root's and read-only to it.
RUN useradd --create-home --uid 10001 --user-group babysitter \
    && mkdir -p /data \
    && chown babysitter:babysitter /data

# The package itself, without dependencies (installed above): built from the context through a
# throwaway bind mount, so no source tree stays in a layer or shadows the installed package.
RUN --mount=type=bind,target=/tmp/babysitter-src,rw \
    --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --no-cache-dir --no-deps /tmp/babysitter-src

# BABYSITTER_HOME is the run store's root (SQLite file, runs, datasets, caches): mount a volume.
# The app reads dataset folders only under /data/datasets (uploads) and BABYSITTER_DATA_ROOTS.
ENV BABYSITTER_HOME=/data \
    BABYSITTER_DATA_ROOTS=/images \
    KERAS_BACKEND=tensorflow \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
VOLUME ["/data"]
# Not /data: `python -m` puts the working folder first on sys.path, and the volume is user data.
WORKDIR /home/babysitter
USER 10001:10001
EXPOSE 8501

# Python's urllib rather than curl: slim bases have no curl. No proxy for the container's own port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; r = u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8501/_stcore/health', timeout=4); sys.exit(r.read().strip() != b'ok')"]

# `babysitter app` is `streamlit run` on the installed app. 0.0.0.0 inside the container, so a
# published port reaches it; app/.streamlit/config.toml keeps 127.0.0.1 outside a container.
CMD ["babysitter", "app", "--server.address=0.0.0.0", "--server.port=8501"]
