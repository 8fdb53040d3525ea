"""One trace per payment across processes: the router's span for the channel's call is the
parent of the core's, the bridge's and confirmations' spans (file exporter, real mesh)."""

import json

from bank.common.v1 import types_pb2
from tests.harness import posting_status, start_mesh, stop_mesh
from tests.channel_calls import ENV, open_loans, order, submit


def spans_of(home, service: str) -> list[dict]:
    path = home / "traces" / f"{service}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_one_payment_is_one_trace_through_router_core_bridge_and_confirmations(tmp_path, pki_dir):
    services = start_mesh(tmp_path, pki_dir, PAYMESH_TRACE_EXPORTER="file",
                          PAYMESH_TRACE_FILE=str(tmp_path / "traces" / "{service}.jsonl"), **ENV)
    try:
        payment = await submit(services, pki_dir, "app", order("traced-1", open_loans(types_pb2.LOAN_TYPE_CASH)[5]))
        await posting_status(services["mainframe-bridge"].address, pki_dir, payment.payment_id)
    finally:
        stop_mesh(services)  # SIGTERM: each process flushes its spans on the way out
    route = next(s for s in spans_of(tmp_path, "payment-router")
                 if s["name"].endswith("PaymentService/SubmitPayment") and s["kind"] == "SpanKind.SERVER")
    trace_id = route["context"]["trace_id"]
    for service, name in (("core-cash", "core-cash apply payment"),
                          ("mainframe-bridge", "mainframe-bridge queue posting"),
                          ("confirmations", "confirmations log confirmation")):
        span = next((s for s in spans_of(tmp_path, service) if s["name"] == name), None)
        assert span is not None, f"no {name!r} span from {service}"
        assert span["context"]["trace_id"] == trace_id, f"{service} is in another trace"
        assert span["parent_id"] == route["context"]["span_id"], f"{service}'s span is not a child of the router's"
