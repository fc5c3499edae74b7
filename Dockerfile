# syntax=docker/dockerfile:1
# The appkeeper operator image: `appkeeper run` as a non-root numeric user, read-only root FS.

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md constraints.txt ./
COPY operator ./operator
# Wheels for the package and its dependencies, installed into a venv the runtime copies whole.
RUN python -m venv /opt/appkeeper \
 && /opt/appkeeper/bin/pip install --no-compile -c constraints.txt . \
 && /opt/appkeeper/bin/python -m compileall -q /opt/appkeeper/lib

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="appkeeper" \
      org.opencontainers.image.description="Kubernetes operator: one App in, everything it implies out, kept so" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/appkeeper /opt/appkeeper
# kopf asks getpass.getuser() at start: without a passwd entry for the uid it dies with
# "KeyError: 'getpwuid(): uid not found: 65532'".
RUN groupadd --gid 65532 appkeeper \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin appkeeper
ENV PATH=/opt/appkeeper/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric user so runAsNonRoot can verify it; nothing is written outside /tmp (an emptyDir).
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["appkeeper"]
CMD ["run"]
