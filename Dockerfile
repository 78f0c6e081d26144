FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends openssh-client && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY agents agents
COPY tools tools
COPY graphs graphs
COPY memory memory
COPY interfaces interfaces
COPY evals evals
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir .
ENV AIOPS_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["aiops"]
CMD ["demo"]
