"""The copybook reader and the record codec: layouts come from the copybook,
every record round-trips exactly, and bytes that are not a record are refused."""

from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from mainframe_bridge import copybook, eod_file, records
from mainframe_bridge.codec import CODEC, RecordCodec, RecordError
from mainframe_bridge.framing import MAX_FRAME

TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80)
ENTRY = st.builds(records.Entry, entry_id=TEXT.filter(bool), account=st.sampled_from(["110504", "510101", "140101"]),
                  side=st.sampled_from("DC"), currency=st.sampled_from(["PEN", "USD"]),
                  amount=st.integers(-(10 ** 15) + 1, 10 ** 15 - 1))


def test_layout_sizes_follow_the_copybook():
    layouts = copybook.load(records.COPYBOOK)
    # 4 + 80 + 8 + 80 + 2 + 2 + 3 bytes; S9(15) COMP-3 is 8 bytes; the EOD records share LRECL 200.
    assert layouts["POSTING-HEADER"].size == 179
    assert records.ENTRY.item("PE-AMOUNT").size == 8
    assert records.EOD_TRAILER.item("ET-DEBIT-TOTAL").size == 9
    assert eod_file.LRECL == records.EOD_HEADER.size == records.EOD_TRAILER.size == 200
    # A book page is one frame: 29-byte inquiry; 295-byte items, as many as fit beside the 119-byte BOOK-END.
    assert (records.BOOK_INQUIRY.size, records.BOOK_ITEM.size, records.BOOK_END.size) == (29, 295, 119)
    assert records.BOOK_ITEMS_PER_PAGE == 221 and 221 * 295 + 119 <= MAX_FRAME < 222 * 295 + 119
    assert records.ENTRY.item("PE-SIDE").conditions == {"PE-DEBIT": "D", "PE-CREDIT": "C"}


def test_packed_and_zoned_bytes_are_the_mainframe_s():
    codec = RecordCodec(copybook.parse("""
       01  R.
           05  R-TYPE   PIC X(4) VALUE 'TEST'.
           05  R-COUNT  PIC 9(3).
           05  R-AMOUNT PIC S9(5) COMP-3.
""")["R"])
    data = codec.encode({"R-COUNT": 42, "R-AMOUNT": -12345})
    assert data == "TEST".encode(CODEC) + bytes([0xF0, 0xF4, 0xF2]) + bytes([0x12, 0x34, 0x5D])
    assert codec.decode(data) == {"R-TYPE": "TEST", "R-COUNT": 42, "R-AMOUNT": -12345}


@settings(max_examples=200, deadline=None)
@given(posting_id=TEXT.filter(bool), payment_id=TEXT, date=st.integers(19000101, 99991231),
       channel=st.integers(0, 99), loan_type=st.integers(0, 99), entries=st.lists(ENTRY, max_size=20))
def test_a_posting_round_trips_exactly(posting_id, payment_id, date, channel, loan_type, entries):
    posting = records.PostingRecord(posting_id, date, payment_id, channel, loan_type, tuple(entries))
    frame = records.encode_posting(posting)
    assert len(frame) == records.HEADER.size + len(entries) * records.ENTRY.size
    assert records.decode_posting(frame) == posting


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(ENTRY.filter(lambda e: e.amount > 0), st.integers(1, 5), st.integers(1, 3)),
                    max_size=30),
       created=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=st.just(eod_file.BANK_TIME_ZONE)),
       sequence=st.integers(0, 999_999))
def test_an_end_of_day_file_round_trips_with_its_control_totals(rows, created, sequence):
    details = [eod_file.Detail(f"p{i}", entry, channel, loan_type)
               for i, (entry, channel, loan_type) in enumerate(rows)]
    data = eod_file.build(20250331, details, created, sequence)
    assert len(data) == (len(details) + 2) * eod_file.LRECL
    parsed = eod_file.read(data)
    assert parsed.details == details and parsed.detail_count == len(details)
    assert (parsed.header_count, parsed.trailer_count, parsed.record_count) == (1, 1, len(details) + 2)
    assert parsed.totals == eod_file.control_totals(details) and parsed.hash_total == eod_file.hash_total(details)
    assert parsed.created == created.replace(microsecond=0) and parsed.sequence == sequence
    assert parsed.file_name == "GLPOST.D250331"


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 10 ** 14 - 1), st.integers(1, 999), TEXT.filter(bool), TEXT,
                               st.integers(0, 99), st.integers(0, 99), ENTRY), max_size=records.BOOK_ITEMS_PER_PAGE),
       more=st.booleans())
def test_a_book_page_round_trips_exactly(rows, more):
    items = [records.BookItem(*row) for row in rows]
    last = (items[-1].seq, items[-1].line) if items else (0, 0)
    page = records.BookPage(20250331, records.RC_OK, items, more, *last, "book page")
    frame = records.encode_book_page(page)
    assert len(frame) == len(items) * records.BOOK_ITEM.size + records.BOOK_END.size <= MAX_FRAME
    assert records.decode_book_page(frame) == page
    with pytest.raises(RecordError):
        records.decode_book_page(frame[:-1])


def test_values_that_do_not_fit_are_refused():
    too_long = records.PostingRecord("x" * 81, 20250331, "p", 1, 1, ())
    with pytest.raises(RecordError, match="at most 80"):
        records.encode_posting(too_long)
    with pytest.raises(RecordError, match="does not fit"):
        records.ENTRY.encode({"PE-AMOUNT": 10 ** 15})
    with pytest.raises(RecordError, match="EBCDIC"):
        records.ENTRY.encode({"PE-ENTRY-ID": "€uro"})


@pytest.mark.parametrize("garble", [
    lambda frame: frame[:-3],  # truncated
    lambda frame: b"\x00" * len(frame),  # not even a record type
    lambda frame: frame[:-1] + b"\x1a",  # a packed amount with no sign nibble
    lambda frame: frame.replace("ENTR".encode(CODEC), "ENTX".encode(CODEC), 1),  # wrong record type
])
def test_garbled_bytes_are_refused_not_misread(garble):
    frame = records.encode_posting(records.PostingRecord(
        "p1", 20250331, "pay1", 4, 1, (records.Entry("p1:1", "110504", "D", "PEN", 100),
                                        records.Entry("p1:2", "140101", "C", "PEN", 100))))
    with pytest.raises((RecordError, UnicodeDecodeError)):
        records.decode_posting(garble(frame))


@pytest.mark.parametrize("text, complaint", [
    ("       01  R.\n           05  A PIC X(4) COMP-3.\n", "cannot be signed"),
    ("       01  R.\n           05  A PIC 9(4) COMP-3.\n", "signed packed"),
    ("       01  R.\n           05  A PIC X(4)\n", "closing period"),
    ("       01  R.\n           05  A PIC 9V99.\n", "PIC 9V99"),
    ("       05  A PIC X(4).\n", "outside any 01"),
])
def test_a_copybook_outside_the_supported_subset_is_refused_with_its_line(text, complaint):
    with pytest.raises(copybook.CopybookError, match=complaint):
        copybook.parse(text)
