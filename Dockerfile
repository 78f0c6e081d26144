# aiops: the service image. Runs as an unprivileged user; /data holds the embedded state (or only the
# lock and small files when Redis, Postgres and Milvus are configured, as in compose.yaml).
FROM python:3.11-slim
# openssh-client: Ansible reaches managed hosts over SSH. curl is not needed: the health check is Python.
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 aiops \
 && useradd --system --uid 10001 --gid aiops --home-dir /data --shell /usr/sbin/nologin aiops
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY agents agents
COPY tools tools
COPY graphs graphs
COPY memory memory
COPY interfaces interfaces
COPY evals evals
# torch first, from the CPU index: an unpinned torch from PyPI is a multi-GB CUDA build.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir . \
 && mkdir -p /data && chown aiops:aiops /data
ENV AIOPS_DATA_DIR=/data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
VOLUME /data
USER aiops:aiops
EXPOSE 8000
# /health answers 503 when the queue is down (unhealthy) and 200 when healthy or degraded. For
# `aiops worker` and `aiops demo`, which serve no HTTP, compose.yaml disables it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('API_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["aiops"]
CMD ["demo"]
