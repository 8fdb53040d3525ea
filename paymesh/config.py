"""Configuration from environment variables, with defaults for a local run.

Every variable the mesh reads is named here, so the Kubernetes manifests and
the docs can be checked against one list.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from paymesh.topology import SERVICES, ServiceSpec


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


class ConfigurationError(ValueError):
    """A variable set to something the mesh cannot honour: the service says which and stops."""


@dataclass(frozen=True)
class Settings:
    home: Path  # PAYMESH_HOME: root of local state (default ./.paymesh)
    pki_dir: Path  # PAYMESH_PKI_DIR: CA and certificates (default $PAYMESH_HOME/pki)
    data_dir: Path  # PAYMESH_DATA_DIR: SQLite stores (default $PAYMESH_HOME/data)
    bind_host: str  # PAYMESH_BIND_HOST: where servers listen (default 127.0.0.1)
    grace_seconds: float  # PAYMESH_GRACE_SECONDS: in-flight work allowed after SIGTERM
    log_level: str  # PAYMESH_LOG_LEVEL
    # PAYMESH_TRACE_EXPORTER: none | console | file | otlp. Unset, it is otlp when the standard OTEL_*
    # variables ask for it (OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint and no OTEL_TRACES_EXPORTER), else none.
    trace_exporter: str
    trace_file: Path  # PAYMESH_TRACE_FILE: JSON lines, with the file exporter; "{service}" is replaced
    # Opt-in plaintext ports, unset (None) by default so a local run has none; 0 picks a free port.
    # PAYMESH_HEALTH_PORT: grpc.health.v1 only, for kubelet's gRPC probes (they cannot present a client cert).
    health_port: int | None = None
    # PAYMESH_METRICS_PORT: HTTP /metrics for Prometheus scraping.
    metrics_port: int | None = None
    # PAYMESH_ROUTER_BULKHEAD: the router's channel group on Kubernetes (digital, atm, agent-store),
    # its identity and the channels it serves; unset, the local mesh's one router for every channel.
    router_bulkhead: str = ""
    # PAYMESH_METRICS_SAMPLE_SECONDS: how often a service reads the gauges kept in its stores (queues, lag, the day).
    metrics_sample_seconds: float = 5.0
    # Metrics over OTLP beside /metrics, by the same rule on OTEL_METRICS_EXPORTER: the platform's collector.
    otlp_metrics: bool = False
    # OTEL_EXPORTER_OTLP_PROTOCOL (or the _TRACES_/_METRICS_ one): only grpc is built in; the exporter
    # itself reads the endpoint, OTEL_EXPORTER_OTLP_CERTIFICATE/_CLIENT_KEY/_CLIENT_CERTIFICATE (mTLS),
    # headers, compression and timeout. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the resource.
    otlp_protocols: tuple[tuple[str, str], ...] = ()  # (variable, value) of those set

    @classmethod
    def from_env(cls) -> "Settings":
        home = Path(_env("PAYMESH_HOME", ".paymesh")).absolute()
        return cls(
            home=home,
            pki_dir=Path(_env("PAYMESH_PKI_DIR", str(home / "pki"))).absolute(),
            data_dir=Path(_env("PAYMESH_DATA_DIR", str(home / "data"))).absolute(),
            bind_host=_env("PAYMESH_BIND_HOST", "127.0.0.1"),
            grace_seconds=float(_env("PAYMESH_GRACE_SECONDS", "10")),
            log_level=_env("PAYMESH_LOG_LEVEL", "INFO").upper(),
            trace_exporter=_env("PAYMESH_TRACE_EXPORTER", "otlp" if _otlp_asked("TRACES") else "none").lower(),
            trace_file=Path(_env("PAYMESH_TRACE_FILE", str(home / "traces" / "{service}.jsonl"))).absolute(),
            health_port=_optional_port("PAYMESH_HEALTH_PORT"),
            metrics_port=_optional_port("PAYMESH_METRICS_PORT"),
            router_bulkhead=_env("PAYMESH_ROUTER_BULKHEAD", ""),
            metrics_sample_seconds=float(_env("PAYMESH_METRICS_SAMPLE_SECONDS", "5")),
            otlp_metrics=_otlp_asked("METRICS"),
            otlp_protocols=tuple((name, _env(name, "").lower()) for name in (
                "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") if _env(name, "")),
        )


def _otlp_asked(signal: str) -> bool:
    """Whether the standard variables ask for OTLP export of TRACES or METRICS: OTEL_<signal>_EXPORTER
    names otlp, or it is unset and an OTLP endpoint is (a platform that injects only the endpoint)."""
    exporters = _env(f"OTEL_{signal}_EXPORTER", "")
    if exporters:
        return "otlp" in {name.strip().lower() for name in exporters.split(",")}
    return bool(_env("OTEL_EXPORTER_OTLP_ENDPOINT", "") or _env(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", ""))


def _optional_port(name: str) -> int | None:
    value = _env(name, "")
    return int(value) if value else None


def port_of(spec: ServiceSpec) -> int:
    """PAYMESH_<SERVICE>_PORT, for example PAYMESH_CORE_CASH_PORT; 0 picks a free port."""
    return int(_env(f"{spec.env_prefix}_PORT", str(spec.default_port)))


def address_of(service_name: str) -> str:
    """PAYMESH_<SERVICE>_ADDR: where to reach a peer (host:port)."""
    spec = SERVICES[service_name]
    return _env(f"{spec.env_prefix}_ADDR", f"127.0.0.1:{spec.default_port}")
