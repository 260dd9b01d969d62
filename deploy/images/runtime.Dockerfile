# What the inference and tuning pods run: kaito_runtime with CUDA torch, vLLM, bitsandbytes.
#   docker build -f deploy/images/runtime.Dockerfile -t kaito-runtime:0.1.0 .
# The controller runs `python -m kaito_runtime.inference|tuning|data|adapters` in it.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    HF_HOME=/workspace/weights
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/kaito
ENV PATH=/opt/kaito/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# vLLM pins its CUDA torch; install it first so the runtime extra resolves against it.
RUN pip install vllm && pip install ".[runtime]" && rm -rf /src
WORKDIR /workspace
