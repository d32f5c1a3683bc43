# syntax=docker/dockerfile:1
# sidecar: `python -m sidecar`. Build from the repository root so shared code is included:
#   docker build -f docker/sidecar.Dockerfile -t ghcr.io/mcp-sentinel/sidecar:0.1.0 .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what this deployable imports (docker/requirements/sidecar.txt; a layer of its own, so code
# changes do not reinstall it), never the rest of the product's dependencies nor the `local` extra.
COPY docker/requirements/sidecar.txt ./requirements.txt
RUN pip install -r requirements.txt
COPY pyproject.toml README.md ./
COPY mcp_sentinel ./mcp_sentinel
COPY sidecar ./sidecar
COPY functions ./functions
COPY workflows ./workflows
COPY examples ./examples
RUN pip install --no-deps .
# Bytecode is compiled now: the runtime root filesystem is read-only.
RUN python -m compileall -q /opt/venv

FROM python:3.11-slim
RUN groupadd --system --gid 10001 sentinel && useradd --system --uid 10001 --gid 10001 --no-create-home sentinel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8091 9103
CMD ["python", "-m", "sidecar"]
