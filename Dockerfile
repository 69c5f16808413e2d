# The service image used by docker-compose.yml.  Models are data: mount them at /models.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ORT_DISABLE_TELEMETRY=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY storage ./storage
COPY counter ./counter
COPY signaling ./signaling
COPY identity ./identity
COPY web ./web
RUN pip install --no-cache-dir '.[ocr]' \
 && pip install --no-cache-dir --no-deps rapidocr-onnxruntime==1.4.4
RUN useradd --create-home --uid 10001 counter && mkdir -p /data /app/certs /app/shared && chown counter /data /app/certs /app/shared
USER counter
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import ssl,urllib.request;urllib.request.urlopen('https://127.0.0.1:8443/healthz',context=ssl._create_unverified_context())"
CMD ["counter", "serve"]
