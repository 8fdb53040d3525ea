"""`paymesh archive --date YYYY-MM-DD`: a closed, reconciled business day written to files an
auditor can read, from which `paymesh reconcile --archive FOLDER` shows its reconciliation again.

The archive keeps what the reconciliation read: every stage's answer for the day, as the
service gave it (the router's payments, each core's movements, the bridge's postings, the
mainframe's book, the confirmations), and for the other days its late items were asked of.
So the reconciliation from the archive is the same run, item by item, as the one that
allowed the archive: it matches the same replies with the same rules.

It refuses a day that is not closed at the ledger (its end-of-day file accepted) or does not
reconcile completely (any break, or a source that did not answer): such a day is not final.

With --drop, once the archive is written (or found, from an earlier run) and reconciles again
from its files alone, the day is dropped from the hot stores: the router's journal, the bridge's
queue and the confirmation log, each in one transaction of its own, each keeping what
paymesh.retention says. A store that refuses (work of the day still pending) drops nothing; the
same command again finishes the others. The loan cores keep their movements (the loan book).

The folder: `<out>/<date>/`, one gzip file of JSON lines per source and day asked
(`<source>--<day>.jsonl.gz`, one reply message a line, field names as in the protos) and
`manifest.json`: the day, when it was archived, each file's source, stage, message type,
count and SHA-256, and the reconciliation's result. An auditor needs gzip and a JSON reader.
"""

import asyncio
import datetime
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from collections.abc import Callable

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2 as conf_pb2
from bank.confirmations.v1 import confirmation_service_pb2_grpc as conf_grpc
from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from bank.payments.v1 import payment_operations_service_pb2 as ops_pb2
from bank.payments.v1 import payment_operations_service_pb2_grpc as ops_grpc
from paymesh import tls
from paymesh.business_calendar import date_argument
from paymesh.config import Settings, address_of
from paymesh.retention import KEY_RETENTION_DAYS
from paymesh.topology import OPERATOR
from paymesh_tools.reconcile import (CALL_TIMEOUT, Item, Outcome, ServiceSource, SourceUnavailable, reconcile,
                                     report)

MANIFEST = "manifest.json"
FORMAT = "paymesh-day-archive/1"


class NotArchivable(Exception):
    """The day is not final: not closed at the ledger, or it does not reconcile."""


@dataclass
class RecordingSource:
    """A source that keeps every day's replies it read, for the archive."""

    source: ServiceSource
    recorded: dict[str, list] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def stage(self) -> str:
        return self.source.stage

    @property
    def loan_types(self):
        return self.source.loan_types

    async def items(self, business_date: str) -> list[Item]:
        replies = await self.source.replies(business_date)
        self.recorded[business_date] = replies
        return self.source.items_from(replies, business_date)


@dataclass
class ArchivedSource:
    """A source answering from an archive: the replies its service gave when the day was archived."""

    source: ServiceSource
    replies_by_day: dict[str, list]

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def stage(self) -> str:
        return self.source.stage

    @property
    def loan_types(self):
        return self.source.loan_types

    async def items(self, business_date: str) -> list[Item]:
        if business_date not in self.replies_by_day:
            raise SourceUnavailable(f"the archive holds no answer of {self.name} for {business_date}")
        return self.source.items_from(self.replies_by_day[business_date], business_date)


def file_name(source_name: str, day: str) -> str:
    """`mainframe-bridge (queued+posted)`, 2026-11-27 -> mainframe-bridge-queued-posted--2026-11-27.jsonl.gz"""
    return f"{re.sub(r'[^a-z0-9]+', '-', source_name.lower()).strip('-')}--{day}.jsonl.gz"


async def day_is_closed(settings: Settings, business_date: str) -> bool:
    """Whether the bridge says the day's end-of-day file was accepted (days close in order)."""
    async with tls.channel_for(address_of("mainframe-bridge"), settings.pki_dir, OPERATOR) as channel:
        status = await bridge_grpc.MainframeBridgeServiceStub(channel).GetBusinessDayStatus(
            bridge_pb2.GetBusinessDayStatusRequest(), timeout=CALL_TIMEOUT)
    last = status.last_closed_business_date
    return bool(last) and (business_date < last or (business_date == last and status.file_accepted))


async def archive_day(settings: Settings, sources: list[ServiceSource], business_date: str, out: Path,
                      now: datetime.datetime | None = None) -> tuple[Path, Outcome]:
    """Reconciles the day from the services, keeping what they answered; writes it if it is final."""
    if not await day_is_closed(settings, business_date):
        raise NotArchivable(f"{business_date} is not closed at the ledger: close it first (paymesh close-day)")
    recorders = [RecordingSource(source) for source in sources]
    outcome = await reconcile(recorders, business_date)
    if outcome.exit_code != 0:
        raise NotArchivable(f"{business_date} does not reconcile completely (exit code {outcome.exit_code}):"
                            f" it is not archived\n{report(outcome, business_date, show_all=False)}")
    folder = out / business_date
    folder.mkdir(parents=True, exist_ok=False)
    files = []
    for recorder in recorders:
        for day, replies in sorted(recorder.recorded.items()):
            name = file_name(recorder.name, day)
            lines = [json_format.MessageToJson(r, preserving_proto_field_name=True, indent=None) for r in replies]
            data = gzip.compress(("\n".join(lines) + "\n" if lines else "").encode(), mtime=0)
            (folder / name).write_bytes(data)
            files.append({"file": name, "source": recorder.name, "stage": recorder.stage, "day": day,
                          "message_type": replies[0].DESCRIPTOR.full_name if replies else "",
                          "messages": len(replies), "sha256": hashlib.sha256(data).hexdigest()})
    # When it was archived, the one instant that is not a business date: UTC, as audit records keep it.
    archived_at = (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds")
    manifest = {"format": FORMAT, "business_date": business_date, "archived_at": archived_at,
                "reconciliation": {"checks": outcome.checks, "breaks": outcome.breaks,
                                   "matched": dict(outcome.matched), "late_items": len(outcome.late_items)},
                "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder, outcome


def read_replies(folder: Path, entry: dict) -> list:
    """One file's replies, after checking its SHA-256 against the manifest."""
    data = (folder / entry["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{entry['file']} does not match its SHA-256 in the manifest: the archive was altered")
    if not entry["messages"]:
        return []
    message_class = message_factory.GetMessageClass(
        descriptor_pool.Default().FindMessageTypeByName(entry["message_type"]))
    return [json_format.Parse(line, message_class()) for line in gzip.decompress(data).decode().splitlines() if line]


def archived_sources(sources: list[ServiceSource], archive: Path, business_date: str) -> list[ArchivedSource]:
    """The sources, answering from archive/<date> (or archive itself, if it is that folder)."""
    folder = archive / business_date if (archive / business_date / MANIFEST).exists() else archive
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT or manifest.get("business_date") != business_date:
        raise ValueError(f"{folder} is not an archive of {business_date}")
    by_source: dict[str, dict[str, list]] = {}
    for entry in manifest["files"]:
        by_source.setdefault(entry["source"], {})[entry["day"]] = read_replies(folder, entry)
    return [ArchivedSource(source, by_source.get(source.name, {})) for source in sources]


@dataclass(frozen=True)
class HotStore:
    """A store a day is dropped from: its service, the stub's drop call and its request message."""

    name: str
    service: str
    drop: Callable[[grpc.aio.Channel], Callable]
    request: Callable[..., Message]


HOT_STORES = (
    HotStore("router journal", "payment-router", lambda ch: ops_grpc.PaymentOperationsServiceStub(ch).DropBusinessDay,
             ops_pb2.DropBusinessDayRequest),
    HotStore("bridge queue", "mainframe-bridge", lambda ch: bridge_grpc.MainframeBridgeServiceStub(ch).DropBusinessDay,
             bridge_pb2.DropBusinessDayRequest),
    HotStore("confirmation log", "confirmations", lambda ch: conf_grpc.ConfirmationServiceStub(ch).DropBusinessDay,
             conf_pb2.DropBusinessDayRequest),
)
DROP_TIMEOUT = 600.0  # one transaction per store: a big day takes a while on SQLite


async def check_archive(sources: list[ServiceSource], out: Path, business_date: str) -> Outcome:
    """The day's reconciliation from its archive alone; raises NotArchivable unless it is complete."""
    try:
        outcome = await reconcile(archived_sources(sources, out, business_date), business_date)
    except (OSError, ValueError) as unreadable:
        raise NotArchivable(f"the archive in {out / business_date} cannot be read: {unreadable}") from unreadable
    if outcome.exit_code != 0:
        raise NotArchivable(f"the archive in {out / business_date} does not reconcile on its own"
                            f" (exit code {outcome.exit_code}): nothing dropped")
    return outcome


async def drop_day(settings: Settings, business_date: str) -> list[tuple[str, types_pb2.DroppedBusinessDay | str]]:
    """Each hot store's drop of the day, in order, up to the first that refuses: (store, what it
    dropped, or why it refused). The router goes first: it knows the day is closed and answered."""
    results: list[tuple[str, types_pb2.DroppedBusinessDay | str]] = []
    for name, store, address in hot_stores():
        try:
            async with tls.channel_for(address, settings.pki_dir, OPERATOR) as channel:
                response = await store.drop(channel)(store.request(business_date=business_date), timeout=DROP_TIMEOUT)
        except grpc.aio.AioRpcError as refused:
            results.append((name, f"{refused.code().name}: {refused.details()}"))
            break
        results.append((name, response.dropped))
    return results


def hot_stores() -> list[tuple[str, HotStore, str]]:
    """(name, store, address) of each hot store to drop a day from: every router journal (one a
    bulkhead in prod: reconcile.router_journals), then the bridge's queue and the confirmation log."""
    from paymesh_tools.reconcile import router_journals

    stores = []
    for store in HOT_STORES:
        if store.service == "payment-router" and len(journals := router_journals()) > 1:
            stores += [(f"{store.name} at {address}", store, address) for address in journals]
        else:
            stores.append((store.name, store, address_of(store.service)))
    return stores


def add_arguments(parser) -> None:
    parser.add_argument("--date", required=True, type=date_argument, help="business date, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, help="archive folder (default $PAYMESH_HOME/archive)")
    parser.add_argument("--drop", action="store_true",
                        help="then drop the day from the hot stores (router, bridge, confirmations), keeping its keys")


def run(args) -> int:
    from paymesh_tools.reconcile import default_sources

    settings = Settings.from_env()
    out = args.out or settings.home / "archive"
    sources = default_sources(settings)
    if args.drop and (out / args.date / MANIFEST).exists():
        print(f"{args.date} was archived before in {out / args.date}: checking it, then dropping the day")
    else:
        try:
            folder, outcome = asyncio.run(archive_day(settings, sources, args.date, out))
        except NotArchivable as refused:
            print(f"{args.date} NOT archived: {refused}")
            return 1
        except FileExistsError:
            print(f"{args.date} NOT archived: {out / args.date} exists already")
            return 1
        matched = ", ".join(f"{count:,} {kind}s" for kind, count in sorted(outcome.matched.items()))
        print(f"{args.date} archived in {folder}: {outcome.checks:,} checks agree ({matched});"
              f" `paymesh reconcile --date {args.date} --archive {out}` shows it again")
    if not args.drop:
        return 0
    try:
        asyncio.run(check_archive(sources, out, args.date))
    except NotArchivable as refused:
        print(f"{args.date} NOT dropped: {refused}")
        return 1
    results = asyncio.run(drop_day(settings, args.date))
    for store, dropped in results:
        if isinstance(dropped, str):
            print(f"  {store}: NOT dropped: {dropped}")
            continue
        print(f"  {store}: {dropped.dropped_count:,} rows dropped, {dropped.kept_key_count:,} keys kept"
              f" ({dropped.forgotten_key_count:,} older forgotten); in use {_size(dropped.store_bytes_before)}"
              f" -> {_size(dropped.store_bytes_after)}")
    done, every = sum(1 for _, dropped in results if not isinstance(dropped, str)), len(hot_stores())
    if done < every:
        print(f"{args.date} dropped from {done} of {every} hot stores; the same command again"
              " finishes once the cause is fixed")
        return 1
    print(f"{args.date} dropped from the hot stores; its keys are remembered for {KEY_RETENTION_DAYS} days")
    return 0


def _size(count: int) -> str:
    return f"{count // 1024:,} KiB"
