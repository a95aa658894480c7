# wps_lakes service image. GPU hosts: run with the NVIDIA container toolkit (`docker run --gpus all`);
# the pinned torch wheel carries its CUDA runtime, so the same image runs on CPU-only hosts too.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    WPS_LAKES_HOME=/data

WORKDIR /opt/wps_lakes
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 1000 wps \
    && mkdir -p /data && chown wps /data

USER wps
VOLUME /data
EXPOSE 5000
# Outputs, status documents, job folders and the job database live under /data.
# Extra configuration: mount a file and set PYWPS_CFG=/path/to/it.
CMD ["wps-lakes", "start", "--bind-host", "0.0.0.0", "--port", "5000"]
