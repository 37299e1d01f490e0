# syntax=docker/dockerfile:1
# Two images from one file, both multi-stage and non-root:
#   docker build --target serving  -t ghcr.io/kfp-mlops/kfp-mlops-serving:0.1.0 .
#   docker build --target pipeline -t ghcr.io/kfp-mlops/kfp-mlops:0.1.0 .
# - serving: the KServe predictor only (requirements-serving.lock): no kfp, no
#   evidently, no audit or lint tools in production. The dependency-audit gate
#   checks exactly this set (each model's requirements.txt).
# - pipeline: the pipeline components (requirements.lock, everything).
# The names must match mlops/runtime.py; so must the base tag (PYTHON_BASE_IMAGE).
ARG PYTHON_BASE_IMAGE=python:3.11-slim-bookworm

# ---- the project as a wheel (no editable install, no source tree in the images) --
FROM ${PYTHON_BASE_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mlops ./mlops
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- serving venv: exact pins, resolve nothing -------------------------------
# The locks are complete (every transitive pin), so --no-deps lets nothing
# unpinned in; pip turns on hash checking by itself when a lock carries hashes.
FROM ${PYTHON_BASE_IMAGE} AS serving-venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements-serving.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock
COPY --from=wheel /wheels /tmp/wheels
# The wheel's metadata names the pipeline dependencies too; they are left out
# on purpose, so `pip check` does not apply here: the import below does.
RUN pip install --no-deps /tmp/wheels/*.whl \
 && python -c "import serving.server, serving.rest, serving.router, serving.predictor, serving.explain, serving.inference_log"

# ---- pipeline venv -----------------------------------------------------------
FROM ${PYTHON_BASE_IMAGE} AS pipeline-venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl \
 && pip check \
 && python -c "import mlops, serving, kfp, kserve, evidently"

# ---- shared runtime base: a non-root user, no build tools ---------------------
FROM ${PYTHON_BASE_IMAGE} AS base
LABEL org.opencontainers.image.source="https://github.com/kfp-mlops/kfp-mlops" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mlops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/mlops --create-home \
      --shell /usr/sbin/nologin mlops
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/mlops \
    MLOPS_HOME=/home/mlops/.mlops
WORKDIR /home/mlops

# ---- pipeline: what every KFP component runs in -------------------------------
FROM base AS pipeline
LABEL org.opencontainers.image.title="kfp-mlops" \
      org.opencontainers.image.description="kfp-mlops pipeline components"
# git: the fetch step clones the data scientist's model repository (git+https://...@REF).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=pipeline-venv /opt/venv /opt/venv
USER 10001:10001
# KFP components replace the command entirely; by hand the image runs the CLI.
ENTRYPOINT ["mlops"]
CMD ["--help"]

# ---- serving: the KServe predictor (last, so a plain `docker build` makes it) --
FROM base AS serving
LABEL org.opencontainers.image.title="kfp-mlops-serving" \
      org.opencontainers.image.description="kfp-mlops KServe predictor: V1/V2 REST, explanations, /metrics"
COPY --from=serving-venv /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080
# Its arguments come from the InferenceService.
ENTRYPOINT ["python", "-m", "serving"]
