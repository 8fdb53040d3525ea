"""What the bridge, emulator and reconcile tests share: real postings on the
chart of accounts (paymesh_tools.ledger_traffic), the two processes started for real."""

from pathlib import Path

from paymesh_tools.ledger_traffic import (CREDIT, DATE, DEBIT, emulator_book, post_all, posted_count, posting, stub,
                                          traceparent, wait_until_posted)
from paymesh_tools.launch import START_TIMEOUT
from tests.harness import ServiceProcess, start_service

__all__ = ["CREDIT", "DATE", "DEBIT", "emulator_book", "post_all", "posted_count", "posting", "stub", "traceparent",
           "wait_until_posted", "start_emulator", "start_bridge"]


def start_emulator(home: Path, pki_dir: Path, **env: str) -> ServiceProcess:
    return start_service("mainframe-emulator", home, pki_dir, timeout=START_TIMEOUT, **env)


def start_bridge(home: Path, pki_dir: Path, emulator_address: str, **env: str) -> ServiceProcess:
    return start_service("mainframe-bridge", home, pki_dir, timeout=START_TIMEOUT,
                         PAYMESH_MAINFRAME_EMULATOR_ADDR=emulator_address, **env)
