"""The one launcher: services as real processes on loopback, each told where its peers are.
On free ports for the tests, the benches and the load run; on their fixed ports for the
local mesh (`paymesh up`, `make run`). A service writes its port file
($PAYMESH_HOME/run/<service>.port) once it is SERVING: that is how its port is learnt
and how the launcher knows it is up."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from paymesh.config import port_of
from paymesh.topology import SERVICES

START_TIMEOUT = 20.0
ROUTER = "payment-router"  # dials every other service: it starts once they serve


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
        return start_service(self.name, self.home, self.pki_dir, timeout=START_TIMEOUT,
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


def start_service(name: str, home: Path, pki_dir: Path, timeout: float = START_TIMEOUT,
                  **extra_env: str) -> ServiceProcess:
    """Starts `python -m <module>` of the service (on a free port unless extra_env names its
    PAYMESH_<SERVICE>_PORT); returns once it serves."""
    return _spawn(name, home, pki_dir, extra_env).wait_serving(timeout)


@dataclass
class _Spawned:
    name: str
    process: subprocess.Popen
    home: Path
    pki_dir: Path
    extra_env: dict[str, str]

    def wait_serving(self, timeout: float) -> ServiceProcess:
        port_file = self.home / "run" / f"{self.name}.port"
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                log = (self.home / "logs" / f"{self.name}.log").read_text(errors="replace")
                raise RuntimeError(f"{self.name} did not start (exit {self.process.poll()}):\n{log}")
            time.sleep(0.05)
        return ServiceProcess(self.name, self.process, int(port_file.read_text()), self.home, self.pki_dir,
                              self.extra_env)


def _spawn(name: str, home: Path, pki_dir: Path, extra_env: dict[str, str]) -> _Spawned:
    spec = SERVICES[name]
    (home / "run" / f"{name}.port").unlink(missing_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    env = service_env(home, pki_dir, **{f"{spec.env_prefix}_PORT": "0", **extra_env})
    with open(home / "logs" / f"{name}.log", "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module], env=env, stdout=log_file, stderr=log_file,
            stdin=subprocess.DEVNULL,
        )
    return _Spawned(name, process, home, pki_dir, extra_env)


def start_mesh(home: Path, pki_dir: Path, only: tuple[str, ...] | None = None, fixed_ports: bool = False,
               timeout: float = START_TIMEOUT, **extra_env: str) -> dict[str, ServiceProcess]:
    """Every service (or only some) as real processes, each told where its peers are; returns
    {name: ServiceProcess} once all serve. On free ports each starts after the ones before it
    (its port is known once it serves); on fixed ports (PAYMESH_<SERVICE>_PORT, else the default)
    every address is known at once, so all but the router start together."""
    started: dict[str, ServiceProcess] = {}
    if "PAYMESH_CLOCK_START" in extra_env:  # one clock for the whole mesh, however long it takes to start
        extra_env.setdefault("PAYMESH_CLOCK_STARTED_AT", str(time.time()))
    names = [name for name in SERVICES if only is None or name in only]
    if fixed_ports:
        ports = {name: str(port_of(SERVICES[name])) for name in names}
        addresses = {f"{spec.env_prefix}_ADDR": f"127.0.0.1:{port_of(spec)}" for spec in SERVICES.values()}
        waves = [[name for name in names if name != ROUTER], [name for name in names if name == ROUTER]]
    else:
        ports = {name: "0" for name in names}
        addresses = {f"{SERVICES[n].env_prefix}_ADDR": "127.0.0.1:9" for n in SERVICES}  # absent peers: a closed port
        waves = [[name] for name in names]
    spawned: list[_Spawned] = []
    try:
        for wave in waves:
            spawned = [_spawn(name, home, pki_dir, {**addresses, f"{SERVICES[name].env_prefix}_PORT": ports[name],
                                                    **extra_env}) for name in wave]
            for child in spawned:
                started[child.name] = child.wait_serving(timeout)
                addresses[f"{SERVICES[child.name].env_prefix}_ADDR"] = started[child.name].address
    except Exception:
        for child in spawned:
            if child.name not in started:
                child.process.kill()
        stop_mesh(started)
        raise
    return started


def stop_mesh(services: dict[str, ServiceProcess], timeout: float = 15.0) -> None:
    """SIGTERM to all at once (each drains its own in-flight work), SIGKILL past timeout."""
    for service in reversed(list(services.values())):
        if service.process.poll() is None:
            service.process.terminate()
    for service in services.values():
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            service.kill()
