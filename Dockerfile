# One image for the API, the migration step and the GPU worker.
# GPU worker: build with --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (or your CUDA).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY attencraft_contract ./attencraft_contract
COPY attencraft_client ./attencraft_client
COPY attencraft_core ./attencraft_core
COPY evaluation ./evaluation
COPY attencraft_cli ./attencraft_cli
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
RUN pip install --no-cache-dir .

ENV ATTENCRAFT_DATA_DIR=/data HF_HOME=/models
VOLUME ["/data", "/models"]
EXPOSE 8000
CMD ["attencraft", "serve", "--host", "0.0.0.0", "--port", "8000"]
