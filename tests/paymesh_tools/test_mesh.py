"""`paymesh up`: the whole mesh from one command, every service SERVING, clean stop; and
`paymesh simulate-day`, the README's main command, playing a (small) business day through it."""

import dataclasses
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest

from bank.common.v1 import errors_pb2
from paymesh.errors import rich_status
from paymesh_tools.probe import grpc_health
from paymesh_tools.simulate_day import _politely
from paymesh.topology import SERVICES


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _mesh_env(tmp_path) -> tuple[dict[str, str], dict[str, int]]:
    ports = dict(zip(SERVICES, _free_ports(len(SERVICES))))
    env = dict(os.environ, PAYMESH_HOME=str(tmp_path), PAYMESH_GRACE_SECONDS="3")
    env.update({f"{SERVICES[name].env_prefix}_PORT": str(port) for name, port in ports.items()})
    return env, ports


def test_up_check_starts_every_service_serving_then_stops_them_all_cleanly(tmp_path):
    env, ports = _mesh_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "paymesh_tools.cli", "up", "--check"], env=env, capture_output=True, text=True,
        timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name, port in ports.items():
        assert re.search(rf"^{name}\s+127\.0\.0\.1:{port}\s+\d+\s+SERVING$", result.stdout, re.M), result.stdout
        assert f"{name} exit 0" in result.stdout
    assert re.search(r"mesh SERVING in \d+\.\d+s", result.stdout)
    assert (tmp_path / "pki" / "ca.crt").exists()


async def test_up_runs_until_sigterm(tmp_path, settings):
    env, ports = _mesh_env(tmp_path)
    mesh = subprocess.Popen([sys.executable, "-m", "paymesh_tools.cli", "up"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in mesh.stdout:
            if line.startswith("mesh SERVING"):
                break
        settings = dataclasses.replace(settings, pki_dir=tmp_path / "pki")
        assert await grpc_health(f"127.0.0.1:{ports['payment-router']}", settings) == "SERVING"
        time.sleep(0.2)
        assert mesh.poll() is None, "the mesh must keep running until told to stop"
        mesh.send_signal(signal.SIGTERM)
        output = mesh.communicate(timeout=30)[0]
        assert mesh.returncode == 0, output
        assert "payment-router exit 0" in output
    finally:
        if mesh.poll() is None:
            mesh.kill()


def test_simulate_day_confirms_every_result_to_its_channel_closes_the_day_and_reconciles(tmp_path):
    env, ports = _mesh_env(tmp_path)
    env.update({f"{SERVICES[name].env_prefix}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()})
    result = subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "simulate-day", "--payments", "800",
                             "--seed", "5"],
                            env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    sent = [int(n) for n in re.findall(r"(\d+)/800 payments sent", out)]
    assert sent[-1] == 800 and max(sent) == 800, sent  # a re-uploaded file is not more payments
    rows = re.findall(r"^(app|internet-banking|atm|agent|store) +(\d+) +(\d+) +(\d+) +(\d+) .* (\d+)/(\d+)$", out, re.M)
    assert len(rows) == 5, out
    for channel, orders, applied, rejected, refused, confirmed, journaled in rows:
        assert int(orders) == int(applied) + int(rejected) + int(refused), channel
        assert int(confirmed) == int(journaled) == int(applied) + int(rejected), channel
    assert sum(int(row[1]) for row in rows) == 800
    assert re.search(r"file GLPOST\.D\d{6} .*with \d+ records.*, accepted by the mainframe", out), out
    # The close began while the last payments still came: those are the next business day's, and
    # both days reconcile item by item.
    after = re.search(r"closed while paying: (\d+) payments came after the close began and are booked in (\S+)", out)
    assert after and int(after.group(1)) > 0, out
    assert re.findall(r"^reconciliation of (\S+)$", out, re.M)[1] == after.group(2)
    assert len(re.findall(r"^0 breaks, \d+ checks agree$", out, re.M)) == 2, out
    assert re.search(r"late items: \d+", out), out


async def test_simulate_day_asks_again_when_told_to_and_only_then():
    """A core briefly away (UNAVAILABLE with RetryInfo: "ask again shortly") is asked again, as a rate
    limit is; an UNAVAILABLE that says nothing of when, or another refusal, is not."""
    def refusal(code, retry_after=None) -> grpc.aio.AioRpcError:
        status = rich_status(code, "the loan's core is unavailable; ask again shortly",
                             errors_pb2.ERROR_REASON_DOWNSTREAM_UNAVAILABLE, retry_after_seconds=retry_after)
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata),
                                    status.details)

    def failing(*errors):
        calls = []

        async def call():
            calls.append(1)
            if len(calls) <= len(errors):
                raise errors[len(calls) - 1]
            return "answered"
        return call, calls

    call, calls = failing(refusal(grpc.StatusCode.UNAVAILABLE, 0.01), refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, 0.01))
    assert await _politely(call, random.Random(1)) == "answered" and len(calls) == 3
    for error in (refusal(grpc.StatusCode.UNAVAILABLE), refusal(grpc.StatusCode.NOT_FOUND, 0.01)):
        call, calls = failing(error)
        with pytest.raises(grpc.aio.AioRpcError):
            await _politely(call, random.Random(1))
        assert len(calls) == 1
