"""`paymesh archive --date YYYY-MM-DD`: a closed, reconciled business day written to files an
auditor can read, from which `paymesh reconcile --archive FOLDER` shows its reconciliation again.

The archive keeps what the reconciliation read: every stage's answer for the day, as the
service gave it (the router's payments, each core's movements, the bridge's postings, the
mainframe's book, the confirmations), and for the other days its late items were asked of.
So the reconciliation from the archive is the same run, item by item, as the one that
allowed the archive: it matches the same replies with the same rules.

It refuses a day that is not closed at the ledger (its end-of-day file accepted) or does not
reconcile completely (any break, or a source that did not answer): such a day is not final.

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

from google.protobuf import descriptor_pool, json_format, message_factory

from bank.ledger.v1 import mainframe_bridge_service_pb2 as bridge_pb2
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc as bridge_grpc
from paymesh import tls
from paymesh.business_calendar import date_argument
from paymesh.config import Settings, address_of
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


def add_arguments(parser) -> None:
    parser.add_argument("--date", required=True, type=date_argument, help="business date, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, help="archive folder (default $PAYMESH_HOME/archive)")


def run(args) -> int:
    from paymesh_tools.reconcile import default_sources

    settings = Settings.from_env()
    out = args.out or settings.home / "archive"
    try:
        folder, outcome = asyncio.run(archive_day(settings, default_sources(settings), args.date, out))
    except NotArchivable as refused:
        print(f"{args.date} NOT archived: {refused}")
        return 1
    except FileExistsError:
        print(f"{args.date} NOT archived: {out / args.date} exists already")
        return 1
    matched = ", ".join(f"{count:,} {kind}s" for kind, count in sorted(outcome.matched.items()))
    print(f"{args.date} archived in {folder}: {outcome.checks:,} checks agree ({matched});"
          f" `paymesh reconcile --date {args.date} --archive {out}` shows it again")
    return 0
