"""Services as real processes on free loopback ports, each told where its peers are: for the
tests, the benches and the load run (`paymesh up` runs the local mesh on its fixed ports).
A service's port is learnt from its port file ($PAYMESH_HOME/run/<service>.port)."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from paymesh.topology import SERVICES

START_TIMEOUT = 20.0


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    port: int
    home: Path
    pki_dir: Path
    extra_env: dict[str, str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def restart(self) -> "ServiceProcess":
        """The same service again, on the same port, home and settings (after a kill)."""
        self.kill()
        spec = SERVICES[self.name]
        return start_service(self.name, self.home, self.pki_dir,
                             **{**self.extra_env, f"{spec.env_prefix}_PORT": str(self.port)})

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code (raises if it does not end within timeout)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return (self.home / "logs" / f"{self.name}.log").read_text(errors="replace")


def service_env(home: Path, pki_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PAYMESH_HOME=str(home),
        PAYMESH_PKI_DIR=str(pki_dir),
        PAYMESH_DATA_DIR=str(home / "data"),
        PAYMESH_GRACE_SECONDS="3",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_service(name: str, home: Path, pki_dir: Path, **extra_env: str) -> ServiceProcess:
    """Starts `python -m <module>` of the service on a free port; returns once it listens."""
    spec = SERVICES[name]
    port_file = home / "run" / f"{name}.port"
    port_file.unlink(missing_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    env = service_env(home, pki_dir, **{f"{spec.env_prefix}_PORT": "0", **extra_env})
    with open(home / "logs" / f"{name}.log", "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module], env=env, stdout=log_file, stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log = (home / "logs" / f"{name}.log").read_text(errors="replace")
            raise RuntimeError(f"{name} did not start (exit {process.poll()}):\n{log}")
        time.sleep(0.05)
    return ServiceProcess(name, process, int(port_file.read_text()), home, pki_dir, extra_env)


def start_mesh(home: Path, pki_dir: Path, only: tuple[str, ...] | None = None, **extra_env: str):
    """Every service (or only some) as real processes on free ports, in start order,
    each told where its peers are. Returns {name: ServiceProcess}."""
    started: dict[str, ServiceProcess] = {}
    if "PAYMESH_CLOCK_START" in extra_env:  # one clock for the whole mesh, however long it takes to start
        extra_env.setdefault("PAYMESH_CLOCK_STARTED_AT", str(time.time()))
    addresses = {f"{SERVICES[n].env_prefix}_ADDR": "127.0.0.1:9" for n in SERVICES}  # absent peers: a closed port
    try:
        for name in SERVICES:
            if only is not None and name not in only:
                continue
            started[name] = start_service(name, home, pki_dir, **addresses, **extra_env)
            addresses[f"{SERVICES[name].env_prefix}_ADDR"] = started[name].address
    except Exception:
        stop_mesh(started)
        raise
    return started


def stop_mesh(services: dict[str, ServiceProcess]) -> None:
    for service in reversed(list(services.values())):
        if service.process.poll() is None:
            service.process.terminate()
    for service in services.values():
        try:
            service.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
