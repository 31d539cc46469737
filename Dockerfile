# rehead on CPU: head surgery, fine-tuning, ONNX/pt2 export and validation.
#   docker build -t rehead .
#   docker run --rm -v "$PWD/out:/out" rehead demo -o /out/demo
# For TensorRT, start from an NVIDIA TensorRT image instead and install ".[gpu]".
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=2
# gcc and the Python headers: AOTInductor compiles its .pt2 packages with the system compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY toolkit ./toolkit
COPY converters ./converters
COPY validation ./validation
RUN pip install ".[cpu]"

RUN useradd --create-home rehead
USER rehead
WORKDIR /home/rehead
ENTRYPOINT ["rehead"]
CMD ["--help"]
