"""`paymesh up`: the whole mesh as local processes on the embedded defaults.

Starts every service (in dependency order) with the dev PKI and SQLite under
$PAYMESH_HOME, waits until each reports SERVING, prints a table, and on Ctrl-C
or SIGTERM stops them all gracefully (SIGTERM, then SIGKILL past the grace).
"""

import asyncio
import os
import sys
import time
from dataclasses import dataclass

from paymesh_tools import dev_pki
from paymesh.config import Settings, port_of
from paymesh_tools.probe import health_of
from paymesh.server import until_signalled
from paymesh_tools.textui import format_table
from paymesh.topology import SERVICES, ServiceSpec

READY_TIMEOUT = 60.0


@dataclass
class Child:
    spec: ServiceSpec
    port: int
    process: asyncio.subprocess.Process
    health: str = "STARTING"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def child_environment(settings: Settings) -> dict[str, str]:
    """Every child gets the same home, PKI and data folders, and every peer's address."""
    env = dict(os.environ)
    env.update(
        PAYMESH_HOME=str(settings.home),
        PAYMESH_PKI_DIR=str(settings.pki_dir),
        PAYMESH_DATA_DIR=str(settings.data_dir),
        PYTHONUNBUFFERED="1",
    )
    for spec in SERVICES.values():
        env.setdefault(f"{spec.env_prefix}_ADDR", f"127.0.0.1:{port_of(spec)}")
    return env


async def start_all(settings: Settings) -> tuple[list[Child], bool]:
    """Starts every service; returns them and whether all came up SERVING. The router
    dials all the others, so it starts once they serve and its first payment finds them."""
    dev_pki.ensure_dev_pki(settings.pki_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = child_environment(settings)
    children: list[Child] = []
    router = SERVICES["payment-router"]
    for group in ([s for s in SERVICES.values() if s is not router], [router]):
        for spec in group:
            with open(logs / f"{spec.name}.log", "ab") as log_file:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", spec.module, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file, stderr=log_file,
                )
            children.append(Child(spec, port_of(spec), process))
        if not await wait_until_serving(children, settings):
            return children, False
    return children, True


async def wait_until_serving(children: list[Child], settings: Settings, timeout: float = READY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.process.returncode is not None:
                child.health = f"EXITED({child.process.returncode})"
            elif child.health != "SERVING":
                child.health = await health_of(child.spec.name, child.address, settings)
        if all(c.health == "SERVING" for c in children):
            return True
        if any(c.health.startswith("EXITED") for c in children):
            return False
        await asyncio.sleep(0.1)
    return False


async def stop_all(children: list[Child], settings: Settings) -> None:
    """SIGTERM to all at once (each drains its own in-flight work), SIGKILL past the grace."""
    for child in children:
        if child.process.returncode is None:
            child.process.terminate()
    for child in children:
        try:
            await asyncio.wait_for(child.process.wait(), settings.grace_seconds + 5)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()


def table(children: list[Child]) -> str:
    rows = [("SERVICE", "ADDRESS", "PID", "HEALTH")]
    return format_table(rows + [(c.spec.name, c.address, c.process.pid, c.health) for c in children])


async def up(check_only: bool = False) -> int:
    """Runs the mesh until Ctrl-C; with check_only, stops as soon as it is SERVING."""
    settings = Settings.from_env()
    started = time.monotonic()
    children, ready = await start_all(settings)
    try:
        elapsed = time.monotonic() - started
        print(table(children), flush=True)
        if not ready:
            print(f"\nthe mesh did not come up; logs are in {settings.home / 'logs'}", file=sys.stderr)
            return 1
        print(f"\nmesh SERVING in {elapsed:.2f}s; logs in {settings.home / 'logs'}", flush=True)
        if not check_only:
            print("Ctrl-C stops it.", flush=True)
            await until_signalled()
    finally:
        print("stopping...", flush=True)
        await stop_all(children, settings)
    codes = {c.spec.name: c.process.returncode for c in children}
    print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()), flush=True)
    return 0 if all(code == 0 for code in codes.values()) else 1


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="store_true", help="stop as soon as every service is SERVING")


def run(args) -> int:
    return asyncio.run(up(check_only=args.check))
