# syntax=docker/dockerfile:1
# The project image: pipeline components and the KServe predictor.
#   docker build -t ghcr.io/kfp-mlops/kfp-mlops:0.1.0 .
# The base tag must match mlops/runtime.py PYTHON_BASE_IMAGE.
ARG PYTHON_BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: resolve nothing, install exact pins into a venv ----------------
FROM ${PYTHON_BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first (cached while only the code changes). requirements.lock is
# complete (every transitive pin), so --no-deps lets nothing unpinned in; pip
# turns on hash checking by itself when the lock carries hashes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock

# The project itself, as a wheel (no editable install, no source tree in the image).
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mlops ./mlops
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && pip install --no-deps /tmp/wheels/*.whl \
 && pip check \
 && python -c "import mlops, serving, kfp, kserve"

# ---- runtime: the venv only, non-root ---------------------------------------
FROM ${PYTHON_BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="kfp-mlops" \
      org.opencontainers.image.description="MLOps on Kubeflow Pipelines and KServe: components and model server" \
      org.opencontainers.image.source="https://github.com/kfp-mlops/kfp-mlops" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 mlops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/mlops --create-home \
      --shell /usr/sbin/nologin mlops

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/mlops \
    MLOPS_HOME=/home/mlops/.mlops

USER 10001:10001
WORKDIR /home/mlops
EXPOSE 8080

# Default: the KServe predictor (V1/V2 REST on 8080, /metrics). Its arguments
# come from the InferenceService; KFP components replace the command entirely.
ENTRYPOINT ["python", "-m", "serving"]
