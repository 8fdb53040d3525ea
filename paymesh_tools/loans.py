"""`paymesh loans import FILE --core cash`: the origination system's loan master file into a core.

The file is CSV with a header line (docs/loan-cores.md#onboarding):

    loan_id,borrower_id,product,currency,principal_minor,tea_bps,term_months,disbursement_date[,balloon_minor,asset_value_minor,installments_paid]

Amounts in minor units (céntimos), the TEA in basis points, dates YYYY-MM-DD. Every line is
read and checked here first, then the whole file goes to the core in one ImportLoans call as the
operator; the core checks each loan against its product and computes its schedule, and takes all
of them or none. Each fault is printed with its line; nothing is written then. The same file again
changes nothing. Exit code 0 once imported, 1 when refused, 2 when the core did not answer.
"""

import asyncio
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loan_core_service_pb2_grpc as core_grpc
from paymesh import tls
from paymesh.config import Settings, address_of
from paymesh.errors import bad_request
from paymesh.topology import OPERATOR, PRODUCTS

REQUIRED = ("loan_id", "borrower_id", "product", "currency", "principal_minor", "tea_bps", "term_months",
            "disbursement_date")
OPTIONAL = ("balloon_minor", "asset_value_minor", "installments_paid")
# The product column and --core name the product by the core's name without "core-".
PRODUCT_TYPES = {product.core.removeprefix("core-"): product.loan_type for product in PRODUCTS}
CALL_TIMEOUT = 300.0
_WHOLE = re.compile(r"[0-9]{1,18}")
_VIOLATION = re.compile(r"loans\[([0-9]+)\]\.(.*)")


@dataclass
class MasterFile:
    """The loans of a file, each with its line number, and what is wrong with its lines."""

    loans: list[core_pb2.LoanRecord] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)


def read_master_file(path: Path) -> MasterFile:
    read = MasterFile()
    with open(path, newline="", encoding="utf-8") as text:
        rows = csv.DictReader(text)
        header = rows.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
        if missing or unknown:
            read.faults.append(f"line 1: the header {'lacks ' + ', '.join(missing) if missing else ''}"
                               f"{'; ' if missing and unknown else ''}"
                               f"{'has unknown columns ' + ', '.join(unknown) if unknown else ''}")
            return read
        for row in rows:
            line = rows.line_num
            if None in row or any(row.get(c) is None for c in REQUIRED):
                read.faults.append(f"line {line}: {len(header)} columns expected")
                continue
            before = len(read.faults)

            def whole(column: str, required: bool = True, line: int = line, row: dict = row) -> int:
                value = (row.get(column) or "").strip()
                if not value and not required:
                    return 0
                if not _WHOLE.fullmatch(value):
                    read.faults.append(f"line {line}: {column} {value[:20]!r} is not a whole number "
                                       f"(amounts in minor units: 150000 for 1,500.00)")
                    return 0
                return int(value)

            product = row["product"].strip()
            if product not in PRODUCT_TYPES:
                read.faults.append(f"line {line}: product {product[:20]!r} is not one of {', '.join(PRODUCT_TYPES)}")
            currency = row["currency"].strip()
            record = core_pb2.LoanRecord(
                loan_id=row["loan_id"].strip(), borrower_id=row["borrower_id"].strip(),
                loan_type=PRODUCT_TYPES.get(product, types_pb2.LOAN_TYPE_UNSPECIFIED),
                principal=types_pb2.Money(currency_code=currency, amount_minor=whole("principal_minor")),
                annual_rate_bps=min(whole("tea_bps"), 2**31 - 1), term_months=min(whole("term_months"), 2**31 - 1),
                disbursement_date=row["disbursement_date"].strip(),
                balloon=types_pb2.Money(currency_code=currency, amount_minor=whole("balloon_minor", False)),
                asset_value=types_pb2.Money(currency_code=currency, amount_minor=whole("asset_value_minor", False)),
                installments_paid=min(whole("installments_paid", False), 2**31 - 1))
            if len(read.faults) == before:
                read.loans.append(record)
                read.lines.append(line)
    if not read.loans and not read.faults:
        read.faults.append("the file has no loans")
    return read


async def import_file(settings: Settings, path: Path, core: str) -> tuple[core_pb2.ImportLoansResponse | None,
                                                                        list[str]]:
    """(the core's answer, None when refused; the faults, each with its line)."""
    read = read_master_file(path)
    if read.faults:
        return None, read.faults
    request = core_pb2.ImportLoansRequest(loans=read.loans, source=path.name)
    async with tls.channel_for(address_of(core), settings.pki_dir, OPERATOR) as channel:
        try:
            return await core_grpc.LoanCoreServiceStub(channel).ImportLoans(request, timeout=CALL_TIMEOUT), []
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            faults = [_on_its_line(f, d, read.lines) for f, d in bad_request(error)]
            return None, [*faults, f"{core}: {error.details()}"]


def _on_its_line(field_name: str, description: str, lines: list[int]) -> str:
    match = _VIOLATION.fullmatch(field_name)
    if match is None or int(match.group(1)) >= len(lines):
        return f"{field_name}: {description}"
    return f"line {lines[int(match.group(1))]}: {match.group(2)}: {description}"


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    load = actions.add_parser("import", help="a loan master file into a core (all of its loans or none)")
    load.add_argument("file", type=Path, help="the loan master file (CSV, docs/loan-cores.md#onboarding)")
    load.add_argument("--core", required=True, choices=sorted(PRODUCT_TYPES), help="the core to load it into")


def run(args) -> int:
    core = f"core-{args.core}"
    try:
        reply, faults = asyncio.run(import_file(Settings.from_env(), args.file, core))
    except OSError as unreadable:
        print(f"{args.file}: {unreadable.strerror or unreadable}")
        return 1
    except grpc.aio.AioRpcError as error:
        print(f"{core} did not import {args.file}: {error.code().name}: {error.details()}")
        return 2
    if reply is None:
        for fault in faults:
            print(f"{args.file}: {fault}")
        print(f"{args.file}: NOT imported; {core} is unchanged")
        return 1
    print(f"{args.file}: {reply.added} loans added to {core}, {reply.unchanged} already held with the same terms")
    return 0
