# rehead in two images (tests/test_dockerfile.py checks the instructions relied on; hadolint lints it).
#
#   cpu (the default, last stage): head surgery, fine-tuning, ONNX/pt2 export and validation.
#     docker build -t rehead .
#     docker run --rm -v "$PWD/out:/out" rehead demo -o /out/demo
#   gpu: the same plus TensorRT engines and `rehead serve` (Triton through PyTriton).
#     docker build --target gpu -t rehead:gpu .
#     docker run --rm --gpus all -p 8000-8002:8000-8002 -v "$PWD/out:/out" rehead:gpu serve /out/BUNDLE --host 0.0.0.0
# The install line of each stage is the README's quick-start line (`pip install ".[cpu,serve,openvino]"`), with the
# gpu stage's extras in place of cpu; the test holds them to it.

# ---------------------------------------------------------------------------------------------------
# gpu: NVIDIA's TensorRT 25.06 image: TensorRT 10.11.0.33, CUDA 12.9, cuDNN 9, Ubuntu 24.04, Python 3.12.
# Its CUDA 12 libraries are what the gpu extra's CUDA 12 wheels (tensorrt-cu12, onnxruntime-gpu) expect;
# later images move to CUDA 13. The torch that pip takes from PyPI brings its own CUDA libraries
# and may need a newer driver than CUDA 12.9 does (R580+ for a cu13 build). Image size: several GB, not
# measured (no Docker engine where this was written).
FROM nvcr.io/nvidia/tensorrt:25.06-py3 AS gpu

# Ubuntu 24.04 marks its Python as externally managed (PEP 668); this image is the environment, so
# pip installs into the system site-packages on purpose.
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
    REHEAD_HEALTH_URL=http://127.0.0.1:8000/v2/health/ready
# python3-dev brings libpython3.12.so: PyTriton's Python backend stub loads the shared libpython of the
# interpreter that runs it, and fails at model load without one. The user has a fixed numeric uid (the
# base image's own `ubuntu` user has 1000) so that runAsNonRoot can verify it.
# DL3008 (pin apt versions): Ubuntu drops superseded versions from its archive with each security
# update, so a pin would break the build; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 rehead

WORKDIR /src
COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
COPY converters ./converters
COPY validation ./validation
# DL3013 (pin pip versions): "." is this source tree; pyproject.toml bounds its dependencies.
# hadolint ignore=DL3013
RUN pip install ".[gpu,serve,openvino]"

USER 10001
WORKDIR /home/rehead
# 8000 HTTP, 8001 gRPC, 8002 metrics: `rehead serve`'s defaults (Triton's own). serve listens on
# 127.0.0.1 unless given --host 0.0.0.0, which a published port needs inside the container.
EXPOSE 8000 8001 8002
# Ready once Triton has loaded the model; run with another --port, set REHEAD_HEALTH_URL to match.
# Only `serve` answers it: other commands run to completion and exit before the first check counts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['REHEAD_HEALTH_URL'], timeout=4)"]
# rehead replaces the base image's /opt/nvidia/nvidia_entrypoint.sh (a banner and driver checks).
ENTRYPOINT ["rehead"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# cpu: about 2 GB with the CPU-only torch below (an estimate, not measured); with PyPI's default torch,
# the CUDA build, it would be over 6 GB.
FROM python:3.11-slim AS cpu

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=2
# g++: AOTInductor compiles its .pt2 packages with the system compiler. The user: as in gpu.
# DL3008 (pin apt versions): Debian drops superseded versions from its archive, so a pin would break
# the build; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 rehead

# The CPU-only torch first, from PyTorch's CPU index, with pyproject.toml's bounds: the install line
# below then finds torch and torchvision satisfied and leaves them as they are.
# DL3013 (pin pip versions): the bounds are pyproject.toml's (the test compares them); the CPU index
# then gives a torch and torchvision that match each other.
# hadolint ignore=DL3013
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4" "torchvision>=0.19"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
COPY converters ./converters
COPY validation ./validation
# DL3013: as in gpu.
# hadolint ignore=DL3013
RUN pip install ".[cpu,serve,openvino]"

USER 10001
WORKDIR /home/rehead
ENTRYPOINT ["rehead"]
CMD ["--help"]
