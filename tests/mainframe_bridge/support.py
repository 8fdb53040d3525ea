"""What the bridge, emulator and reconcile tests share: real postings on the
chart of accounts (paymesh_tools.ledger_traffic), the two processes started for real."""

import asyncio
import time
from pathlib import Path

import grpc

from paymesh_tools.ledger_traffic import (CREDIT, DATE, DEBIT, emulator_book, post_all, posted_count, posting, stub,
                                          traceparent, wait_until_posted)
from paymesh_tools.launch import START_TIMEOUT
from tests.harness import ServiceProcess, health_of, start_service

__all__ = ["CREDIT", "DATE", "DEBIT", "emulator_book", "post_all", "posted_count", "posting", "stub", "traceparent",
           "wait_until_posted", "start_emulator", "start_bridge", "health_of", "until_serving"]


def start_emulator(home: Path, pki_dir: Path, **env: str) -> ServiceProcess:
    return start_service("mainframe-emulator", home, pki_dir, timeout=START_TIMEOUT, **env)


def start_bridge(home: Path, pki_dir: Path, emulator_address: str, **env: str) -> ServiceProcess:
    return start_service("mainframe-bridge", home, pki_dir, timeout=START_TIMEOUT,
                         PAYMESH_MAINFRAME_EMULATOR_ADDR=emulator_address, **env)



async def until_serving(processes: list[ServiceProcess], pki_dir: Path, since: float, within: float = 30.0
                        ) -> tuple[ServiceProcess, float]:
    """The first of the processes (alive) whose health says SERVING, and how long after `since`
    (monotonic) it did: a bridge on PostgreSQL serves once it holds the lease."""
    while True:
        for process in processes:
            try:
                if process.process.poll() is None and await health_of(process.address, pki_dir) == "SERVING":
                    return process, time.monotonic() - since
            except grpc.aio.AioRpcError:
                pass  # not answering yet
        assert time.monotonic() - since < within, f"no process SERVING within {within} s"
        await asyncio.sleep(0.02)
