"""`paymesh up`: the whole mesh as local processes on the embedded defaults.

Starts every service on its fixed port (through paymesh_tools.launch) with the dev PKI
and SQLite under $PAYMESH_HOME, prints a table once each is SERVING, and on Ctrl-C or
SIGTERM stops them all gracefully (SIGTERM, then SIGKILL past the grace).
"""

import asyncio
import sys
import time

from paymesh.config import Settings
from paymesh.server import until_signalled
from paymesh_tools import dev_pki
from paymesh_tools.launch import ServiceProcess, start_mesh, stop_mesh
from paymesh_tools.probe import health_of
from paymesh_tools.textui import format_table

READY_TIMEOUT = 60.0  # a fresh home seeds every core's portfolio first


async def start_local(settings: Settings) -> dict[str, ServiceProcess]:
    """Every service on its fixed port, SQLite under settings.data_dir; raises RuntimeError (with the
    failing service's log) when one does not come up."""
    dev_pki.ensure_dev_pki(settings.pki_dir)
    return await asyncio.to_thread(
        start_mesh, settings.home, settings.pki_dir, fixed_ports=True, timeout=READY_TIMEOUT,
        PAYMESH_DATA_DIR=str(settings.data_dir), PAYMESH_GRACE_SECONDS=str(settings.grace_seconds))


async def stop_local(services: dict[str, ServiceProcess], settings: Settings) -> None:
    await asyncio.to_thread(stop_mesh, services, settings.grace_seconds + 5)


async def table(services: dict[str, ServiceProcess], settings: Settings) -> str:
    rows: list[tuple[object, ...]] = [("SERVICE", "ADDRESS", "PID", "HEALTH")]
    for name, service in services.items():
        rows.append((name, service.address, service.process.pid, await health_of(name, service.address, settings)))
    return format_table(rows)


async def up(check_only: bool = False) -> int:
    """Runs the mesh until Ctrl-C; with check_only, stops as soon as it is SERVING."""
    settings = Settings.from_env()
    started = time.monotonic()
    try:
        services = await start_local(settings)
    except RuntimeError as failed:
        print(f"the mesh did not come up: {failed}\nlogs are in {settings.home / 'logs'}", file=sys.stderr)
        return 1
    try:
        elapsed = time.monotonic() - started
        print(await table(services, settings), flush=True)
        print(f"\nmesh SERVING in {elapsed:.2f}s; logs in {settings.home / 'logs'}", flush=True)
        if not check_only:
            print("Ctrl-C stops it.", flush=True)
            await until_signalled()
    finally:
        print("stopping...", flush=True)
        await stop_local(services, settings)
    codes = {name: service.process.returncode for name, service in services.items()}
    print("stopped: " + ", ".join(f"{name} exit {code}" for name, code in codes.items()), flush=True)
    return 0 if all(code == 0 for code in codes.values()) else 1


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="store_true", help="stop as soon as every service is SERVING")


def run(args) -> int:
    return asyncio.run(up(check_only=args.check))
