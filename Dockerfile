# waiver-pipeline worker image.
#   docker build -t waiver-pipeline .
#   docker run --rm waiver-pipeline --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/waiver \
    PATH=/opt/waiver/bin:$PATH \
    WAIVER_WEB_HOST=0.0.0.0 \
    WAIVER_WEB_PORT=6066 \
    WAIVER_DATA_DIR=/data

# The program runs as this unprivileged user; it owns only its state folder.
RUN groupadd --system --gid 10001 waiver \
 && useradd --system --uid 10001 --gid waiver --home-dir /home/waiver --create-home \
      --shell /usr/sbin/nologin waiver \
 && mkdir -p /data && chown waiver:waiver /data

WORKDIR /src
# What is sent is filtered by .dockerignore.
COPY . .
# Installed into a virtualenv that the runtime user can read but not change.
RUN python -m venv "$VIRTUAL_ENV" \
 && pip install . \
 && rm -rf /src/build /src/*.egg-info

USER waiver
WORKDIR /home/waiver

EXPOSE 6066
ENTRYPOINT ["waiver"]
CMD ["worker"]
