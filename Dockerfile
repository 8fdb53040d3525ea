# One image for every paymesh service; the service is the command:
#   docker run paymesh:dev core_cash        (python -m core_cash)
# Multi-stage: dependencies are installed in a build stage; the final stage gets only the
# virtualenv and the source, runs as an unprivileged user, and has no compiler, no pip.
# Pinned by exact tag; a platform team pins by digest too (FROM ...@sha256:...) in its registry.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/paymesh
COPY pyproject.toml ./
COPY gen/ gen/
COPY paymesh/ paymesh/
# The dependencies of pyproject.toml (wheels: grpcio, cryptography, ... ship them), then paymesh itself is
# taken out again: the final stage runs the source tree, data files (channels.toml, ...) included.
RUN /opt/paymesh/bin/pip install --prefer-binary . \
 && /opt/paymesh/bin/pip uninstall --yes paymesh \
 && /opt/paymesh/bin/pip uninstall --yes pip

FROM python:3.11.11-slim-bookworm AS runtime
# Python's own variables (the policy test checks manifests only pass PAYMESH_* ones).
ENV PATH=/opt/paymesh/bin:$PATH \
    PYTHONPATH=/app:/app/gen \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --gid 10001 paymesh \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin paymesh \
 && python -m pip uninstall --yes pip setuptools wheel
COPY --from=build /opt/paymesh /opt/paymesh
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
