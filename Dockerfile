# tes-core's server as a container image: the API (gunicorn), the workers and the
# migrations, for deploy/kubernetes/ (or any container platform).
#   docker build -t tes-core .
# With backend and other plugins (folders under plugins/, space-separated):
#   docker build --build-arg PLUGINS="plugins/tes_aks plugins/tes_azure" -t tes-core:aks .
# Storages of tes-filetransfer (its extras; every one by default, EXTRAS="" for none):
#   docker build --build-arg EXTRAS=azure -t tes-core:azure .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY tes_core ./tes_core
COPY migrations ./migrations
COPY filetransfer ./filetransfer
COPY runner ./runner
COPY plugins ./plugins
ARG EXTRAS=all
ARG PLUGINS=""
RUN pip install "./filetransfer${EXTRAS:+[$EXTRAS]}" ./runner ".[postgres,redis,server,auth]" \
        $(for plugin in $PLUGINS; do printf './%s ' "$plugin"; done) \
    && rm -rf /src

# A user without a home or a shell; deploy/kubernetes runs it with a read-only root
# filesystem, TES_DATA_DIR and /tmp on volumes.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tes
USER 10001:10001
ENV TES_DATA_DIR=/var/lib/tes-server
WORKDIR /
EXPOSE 8000
CMD ["gunicorn", "--config=python:tes_core.gunicorn_conf", "--bind=0.0.0.0:8000", \
     "tes_core.app:create_app()"]
