# One image for every role (api, worker, beat, flower, hstssim); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY hstssim ./hstssim
COPY config ./config
RUN pip install --no-cache-dir '.[embedded,postgres]' && mkdir -p /var/lib/hsts-orchestrator /data && chown nobody /var/lib/hsts-orchestrator /data
USER nobody
