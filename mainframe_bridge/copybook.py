"""Reads a COBOL copybook into record layouts: the subset the ledger records use.

Supported: level numbers, FILLER, group items with OCCURS n TIMES, elementary
items PIC X(n) (text), PIC 9(n) (unsigned zoned decimal), PIC S9(n) COMP-3
(signed packed decimal), VALUE 'literal' (a constant such as the record type)
and 88-level condition names (the values a field may hold). Anything else is
refused with the line it is on, so a copybook change never silently shifts
an offset.

(The PyPI `copybook` package was tried first: it sizes COMP-3 fields as if
they were zoned and drops the sign, which would misplace every later field.)
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT, ZONED, PACKED = "text", "zoned", "packed"
_STATEMENT = re.compile(
    r"^(?P<level>\d\d)\s+(?P<name>[A-Z0-9-]+)"
    r"(?:\s+OCCURS\s+(?P<occurs>\d+)(?:\s+TIMES)?)?"
    r"(?:\s+PIC\s+(?P<pic>\S+)(?:\s+(?P<usage>COMP-3))?)?"
    r"(?:\s+VALUE\s+'(?P<value>[^']*)')?$"
)
_PIC = re.compile(r"^(?P<sign>S)?(?P<kind>[X9])\((?P<count>\d+)\)$")


class CopybookError(ValueError):
    """The copybook uses something this reader does not understand."""


@dataclass
class Item:
    """An elementary item: where it sits and how its bytes read."""

    name: str
    kind: str  # TEXT, ZONED or PACKED
    digits: int  # characters for TEXT, digits for ZONED and PACKED
    value: str | None = None  # a VALUE constant
    conditions: dict[str, str] = field(default_factory=dict)  # 88-level name -> value

    @property
    def size(self) -> int:
        return self.digits // 2 + 1 if self.kind == PACKED else self.digits

    @property
    def filler(self) -> bool:
        return self.name == "FILLER"


@dataclass
class Group:
    name: str
    level: int
    occurs: int = 1
    children: list["Item | Group"] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.occurs * sum(child.size for child in self.children)


def parse(text: str) -> dict[str, Group]:
    """The 01-level records of a copybook, by name, in order."""
    records: dict[str, Group] = {}
    stack: list[Group] = []
    last_item: Item | None = None
    for statement, line_no in _statements(text):
        match = _STATEMENT.match(statement)
        if not match:
            raise CopybookError(f"line {line_no}: cannot read {statement!r}")
        level, name = int(match["level"]), match["name"]
        if level == 88:
            if last_item is None or match["value"] is None:
                raise CopybookError(f"line {line_no}: an 88 level needs an item above it and a VALUE")
            last_item.conditions[name] = match["value"]
            continue
        while stack and stack[-1].level >= level:
            stack.pop()
        occurs = int(match["occurs"] or 1)
        if match["pic"] is None:
            group = Group(name, level, occurs)
            if level == 1:
                records[name] = group
            elif not stack:
                raise CopybookError(f"line {line_no}: {name} is outside any 01 record")
            else:
                stack[-1].children.append(group)
            stack.append(group)
            last_item = None
            continue
        if not stack:
            raise CopybookError(f"line {line_no}: {name} is outside any 01 record")
        if occurs != 1:
            raise CopybookError(f"line {line_no}: OCCURS is supported on groups only")
        last_item = _item(name, match["pic"], match["usage"], match["value"], line_no)
        stack[-1].children.append(last_item)
    return records


def load(path: Path) -> dict[str, Group]:
    return parse(path.read_text(encoding="ascii"))


def _item(name: str, pic: str, usage: str | None, value: str | None, line_no: int) -> Item:
    match = _PIC.match(pic)
    if not match:
        raise CopybookError(f"line {line_no}: PIC {pic} is not X(n), 9(n) or S9(n)")
    count = int(match["count"])
    if match["kind"] == "X":
        if match["sign"] or usage:
            raise CopybookError(f"line {line_no}: PIC X cannot be signed or COMP-3")
        kind = TEXT
    elif usage == "COMP-3":
        if not match["sign"]:
            raise CopybookError(f"line {line_no}: amounts are signed packed decimal: use S9(n) COMP-3")
        kind = PACKED
    else:
        if match["sign"]:
            raise CopybookError(f"line {line_no}: signed zoned decimal is not used here; use COMP-3")
        kind = ZONED
    if value is not None and len(value) > count:
        raise CopybookError(f"line {line_no}: VALUE '{value}' is longer than PIC {pic}")
    return Item(name, kind, count, value)


def _statements(text: str):
    """(statement, line number) pairs: fixed-format columns 8-72, comments dropped,
    statements ending at a period."""
    pending: list[str] = []
    start = 0
    for line_no, line in enumerate(text.splitlines(), 1):
        if len(line) > 6 and line[6] == "*":
            continue
        body = line[7:72].strip()
        if not body:
            continue
        if not pending:
            start = line_no
        pending.append(body)
        if body.endswith("."):
            yield " ".join(pending)[:-1].strip(), start
            pending = []
    if pending:
        raise CopybookError(f"line {start}: statement without a closing period")
