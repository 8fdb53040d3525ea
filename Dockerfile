# One image for every paymesh service; the service is the command:
#   docker run paymesh:dev core_cash        (python -m core_cash)
# Multi-stage: dependencies are installed in a build stage; the final stage gets only the
# virtualenv, its SBOM and the source, runs as an unprivileged user, and has no compiler, no pip.
# The base image by digest (python:3.11.11-slim-bookworm, the multi-arch index), so a rebuilt tag
# cannot change what is built; moving to a new base is a change of this line, reviewed.
#   docker build -t paymesh:dev .                                  # the image, its SBOM inside
#   docker build --target sbom-export --output type=local,dest=build/sbom .   # the SBOM alone

FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/paymesh
COPY requirements.lock ./
# Exactly the locked runtime dependencies, every file checked against its SHA-256 (make lock), wheels
# only: nothing is compiled, nothing unlocked comes in. paymesh itself is not installed: the final
# stage runs the source tree, data files (channels.toml, ...) included. pip and setuptools (the
# venv's seed, not in the lock) go.
RUN /opt/paymesh/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock \
 && /opt/paymesh/bin/pip uninstall --yes pip setuptools

# The CycloneDX SBOM of that virtualenv, by a tool in a venv of its own (requirements-sbom.lock),
# so neither the tool nor its dependencies reach the image.
FROM build AS sbom
COPY requirements-sbom.lock pyproject.toml ./
RUN python -m venv /opt/sbom \
 && /opt/sbom/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements-sbom.lock \
 && mkdir /sbom \
 && /opt/sbom/bin/cyclonedx-py environment --output-reproducible --of JSON --mc-type application \
    --pyproject pyproject.toml -o /sbom/paymesh.cdx.json /opt/paymesh

FROM scratch AS sbom-export
COPY --from=sbom /sbom/paymesh.cdx.json /paymesh.cdx.json

FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5 AS runtime
# Python's own variables (the policy test checks manifests only pass PAYMESH_* ones).
ENV PATH=/opt/paymesh/bin:$PATH \
    PYTHONPATH=/app:/app/gen \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --gid 10001 paymesh \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin paymesh \
 && python -m pip uninstall --yes pip setuptools wheel
COPY --from=build /opt/paymesh /opt/paymesh
# What the image carries, for scanners: the SBOM of /opt/paymesh (the Python packages; the base
# image's Debian packages are the base image's own SBOM's).
COPY --from=sbom /sbom/paymesh.cdx.json /opt/paymesh/sbom.cdx.json
WORKDIR /app
COPY gen/ gen/
COPY paymesh/ paymesh/
COPY payment_router/ payment_router/
COPY loan_core/ loan_core/
COPY core_cash/ core_cash/
COPY core_mortgage/ core_mortgage/
COPY core_vehicle/ core_vehicle/
COPY mainframe_bridge/ mainframe_bridge/
COPY confirmations/ confirmations/
COPY mainframe_emulator/ mainframe_emulator/
# The stores' backup CronJobs run this one tool (python -m paymesh_tools.store_backup); the rest
# of paymesh_tools (the launcher, the dev PKI, the day's simulation) stays out of the image.
COPY paymesh_tools/__init__.py paymesh_tools/store_backup.py paymesh_tools/
USER 10001:10001
# gRPC ports of the services (see paymesh/topology.py), the health and metrics ports.
EXPOSE 50051 50061 50062 50063 50071 50081 50090 8081 9464
ENTRYPOINT ["python", "-m"]
CMD ["payment_router"]
