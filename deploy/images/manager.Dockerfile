# The KAITO manager (controllers, admission webhooks, webhook certificates): no ML stack.
#   docker build -f deploy/images/manager.Dockerfile -t kaito-manager:0.1.0 .
# deploy/base/deployment.yaml runs it as `kaito manager ...`, as user 65532 on a read-only root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The azure extra: the AKS backend (deploy/overlays/aks) talks to ARM with the Azure SDK.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[azure]"

FROM python:3.11-slim
LABEL org.opencontainers.image.title="kaito-manager" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/kaito-project/kaito" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin kaito
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "kaito[azure]==0.1.0" && rm -rf /wheels
USER 65532:65532
ENTRYPOINT ["kaito"]
CMD ["manager"]
