"""Properties of the loan engine over many generated loans and payments (hypothesis):
an allocation sums to the amount paid, no balance goes negative, a schedule's principal
parts sum to the principal, and apply-then-reverse (through the real SQLite store)
restores the loan exactly."""

import itertools
import tempfile
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
import msgspec

from bank.common.v1 import types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from loan_core import engine, ledger, queries, store
from loan_core.apply import ARCHIVE_EVERY, LoanCache, apply_batch
from loan_core.client import payment
from paymesh import chart_of_accounts as coa
from paymesh.errors import Refused
from loan_core.loan import LoanTerms, build_installments, originate
from loan_core.portfolio import generate
from paymesh_tools.products import RULES_OF_TYPE
from loan_core.reversal import reverse_payment
from paymesh.sqlite import _in_transaction, connect  # the Store's own BEGIN ... COMMIT, without its thread

PROPERTIES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOAN_TYPES = st.sampled_from(sorted(RULES_OF_TYPE))
MODES = st.sampled_from([types_pb2.PREPAYMENT_MODE_UNSPECIFIED, types_pb2.PREPAYMENT_MODE_REDUCE_TERM,
                         types_pb2.PREPAYMENT_MODE_REDUCE_INSTALLMENT])


@st.composite
def loans(draw) -> LoanTerms:
    rules = RULES_OF_TYPE[draw(LOAN_TYPES)]
    principal = draw(st.integers(100_00, 500_000_00))
    term = draw(st.integers(1, 360))
    return LoanTerms(
        loan_id="CSH-000001", loan_type=rules.loan_type, borrower_id="B1", currency_code="PEN",
        principal_minor=principal, annual_rate_bps=draw(st.integers(0, 9_000)), term_months=term,
        disbursement_date=date(2020, 1, draw(st.integers(1, 31))),  # a 29th to 31st: month-end due dates
        balloon_minor=draw(st.integers(0, principal // 2)) if draw(st.booleans()) else 0,
        # Only a product with an asset insures one (a cash loan has no account to owe it to).
        asset_insurance_minor=draw(st.integers(0, 50_000)) if rules.asset_insurance_account else 0,
        installments_paid=draw(st.integers(0, term)),
    )


def _check_sane(state, principal: int) -> None:
    assert state.outstanding_principal >= 0
    for i in state.installments:
        assert 0 <= i.paid_fee <= i.fee_charged and 0 <= i.paid_penalty <= i.penalty_accrued
        assert 0 <= i.paid_interest <= i.interest and 0 <= i.paid_insurance <= i.insurance
        assert 0 <= i.paid_principal <= i.principal and i.outstanding >= 0
    assert sum(i.principal for i in state.installments) + state.prepaid_minor == principal


@PROPERTIES
@given(loans())
def test_a_schedules_principal_parts_sum_to_the_principal(terms):
    rules = RULES_OF_TYPE[terms.loan_type]
    schedule = build_installments(terms, rules, terms.principal_minor, 1, terms.term_months, terms.balloon_minor)
    assert len(schedule) == terms.term_months
    assert sum(i.principal for i in schedule) == terms.principal_minor
    assert all(i.principal >= 0 and i.interest >= 0 for i in schedule)
    assert schedule[-1].principal >= min(terms.balloon_minor, terms.principal_minor) or terms.annual_rate_bps == 0


@PROPERTIES
@given(loans(), st.integers(0, 12_000), st.integers(1, 12 * 10**8), MODES, st.integers(1, 3), st.booleans())
def test_allocation_sums_to_the_amount_principal_is_conserved_and_postings_balance(terms, days, fraction, mode,
                                                                                  payments, in_cash):
    """Any amount up to 120 % of the payoff, any mode, any day: the allocation adds up to the amount (a
    surplus in cash included), principal is conserved (schedule + prepaid = principal), no balance goes
    negative, and the payment's ledger movement is balanced."""
    rules = RULES_OF_TYPE[terms.loan_type]
    state = originate(terms, rules)
    on = terms.disbursement_date
    for _ in range(payments):
        on += timedelta(days=days // payments)
        if state.paid_off:
            break
        payoff = engine.payoff_amount(engine.as_of(state, rules, on), on)
        amount = max(1, payoff * fraction // 10**9)
        try:
            after, allocation = engine.apply_payment(state, rules, amount, on, mode, surplus_allowed=in_cash)
        except Refused:
            assert (amount > payoff and not in_cash) or not rules.partial_payments_allowed
            continue  # refused: the state is unchanged by construction
        assert allocation.total == amount
        assert allocation.overpayment == max(0, amount - payoff)
        assert min(allocation.fees, allocation.penalty_interest, allocation.interest, allocation.insurance,
                   allocation.principal, allocation.prepayment, allocation.overpayment) >= 0
        assert after.outstanding_principal <= state.outstanding_principal
        _check_sane(after, terms.principal_minor)
        posting = ledger.payment_posting("p", "p", on.isoformat(), types_pb2.CHANNEL_STORE, terms.currency_code,
                                         allocation, rules)
        assert ledger.is_balanced(posting)
        state = after


_IDS = itertools.count()
_ROOT = Path(tempfile.mkdtemp(prefix="loan-properties-"))
_STORES: dict[int, tuple] = {}
AS_OF = date(2026, 11, 27)


def _store_of(loan_type: int):
    """One real SQLite file per product for the whole test, seeded with 60 loans."""
    if loan_type not in _STORES:
        connection = connect(_ROOT / f"{loan_type}.db")
        connection.executescript(store.SCHEMA)
        loans_seeded = generate(RULES_OF_TYPE[loan_type], seed=3, count=60, as_of=AS_OF)
        store.seed_if_empty(connection, loans_seeded)
        _STORES[loan_type] = (connection, LoanCache(RULES_OF_TYPE[loan_type]), loans_seeded)
    return _STORES[loan_type]


@settings(max_examples=40, deadline=None)
@given(LOAN_TYPES, st.integers(0, 59), st.integers(0, 120), st.integers(1, 10**9), MODES)
def test_apply_then_reverse_restores_the_loan(loan_type, index, days_after, fraction, mode):
    rules = RULES_OF_TYPE[loan_type]
    connection, cache, seeded = _store_of(loan_type)
    terms = seeded[index]
    on = AS_OF + timedelta(days=days_after)
    before = queries.get_loan(connection, rules, LoanCache(rules), terms.loan_id, on)
    assume(before.status != loans_pb2.LOAN_STATUS_PAID_OFF)
    payoff = before.payoff_amount.amount_minor
    amount = max(1, payoff * fraction // 10**9)
    payment_id = f"pay-{next(_IDS)}"
    sent = payment(payment_id, terms.loan_id, amount, terms.currency_code, on.isoformat(), mode=mode)
    [outcome] = _in_transaction(connection, lambda c: apply_batch(c, [sent], rules=rules, loans=cache))
    assume(outcome.HasField("applied"))
    allocation = outcome.applied.allocation
    assert sum((allocation.fees_minor, allocation.penalty_interest_minor, allocation.interest_minor,
                allocation.insurance_minor, allocation.principal_minor, allocation.prepayment_minor)) == amount
    assert queries.get_loan(connection, rules, LoanCache(rules), terms.loan_id, on) != before
    reversal = core_pb2.ReversePaymentRequest(reversal_id=f"rev-{payment_id}", payment_id=payment_id,
                                              business_date=on.isoformat(), reason="test")
    response = _in_transaction(connection, lambda c: reverse_payment(c, rules, cache, reversal))
    assert response.outstanding_balance.amount_minor == before.outstanding_principal.amount_minor
    assert queries.get_loan(connection, rules, LoanCache(rules), terms.loan_id, on) == before  # read from the file
    assert LoanCache(rules).get(connection, terms.loan_id)[0] == cache.get(connection, terms.loan_id)[0]


def test_a_chain_of_payments_reversed_one_by_one_restores_each_state():
    """Enough payments that settled installments move to the loan's archive column (more than
    once), then each reversed, latest first: after each reversal the loan read from the file,
    and the cache, are exactly the loan before that payment."""
    rules = RULES_OF_TYPE[types_pb2.LOAN_TYPE_MORTGAGE]
    connection = connect(Path(tempfile.mkdtemp(prefix="loan-chain-")) / "chain.db")
    connection.executescript(store.SCHEMA)
    seeded = generate(rules, seed=5, count=40, as_of=AS_OF)
    store.seed_if_empty(connection, seeded)
    terms = next(t for t in seeded if 0 < t.installments_paid < t.term_months - 40)
    cache = LoanCache(rules)
    befores, on = [], AS_OF
    for n in range(2 * ARCHIVE_EVERY + 5):
        loan = queries.get_loan(connection, rules, LoanCache(rules), terms.loan_id, on)
        due = loan.amount_due.amount_minor or loan.schedule[-1].principal_minor  # pays what is due
        sent = payment(f"chain-{n}", terms.loan_id, due, terms.currency_code, on.isoformat())
        [outcome] = _in_transaction(connection, lambda c, sent=sent: apply_batch(c, [sent], rules=rules, loans=cache))
        assert outcome.HasField("applied"), outcome
        befores.append(loan)
        on += timedelta(days=31)
    assert cache.get(connection, terms.loan_id)[0].archived > ARCHIVE_EVERY
    for n in reversed(range(len(befores))):
        on -= timedelta(days=31)
        reversal = core_pb2.ReversePaymentRequest(reversal_id=f"rev-chain-{n}", payment_id=f"chain-{n}",
                                                  business_date=on.isoformat(), reason="test")
        _in_transaction(connection, lambda c, reversal=reversal: reverse_payment(c, rules, cache, reversal))
        assert queries.get_loan(connection, rules, LoanCache(rules), terms.loan_id, on) == befores[n]
        assert LoanCache(rules).get(connection, terms.loan_id)[0] == cache.get(connection, terms.loan_id)[0]


def test_a_store_from_before_the_archive_column_is_read_as_it_is():
    rules = RULES_OF_TYPE[types_pb2.LOAN_TYPE_MORTGAGE]
    connection = connect(Path(tempfile.mkdtemp(prefix="loan-old-")) / "old.db")
    connection.executescript(store.SCHEMA.replace("    state TEXT,\n    archive TEXT\n", "    state TEXT\n"))
    seeded = generate(rules, seed=5, count=5, as_of=AS_OF)
    store.seed_if_empty(connection, seeded)
    state = originate(seeded[0], rules)
    old_json = msgspec.json.encode([state.balloon_minor, state.prepaid_minor, state.installments, state.settled])
    connection.execute("UPDATE loans SET state = ? WHERE loan_id = ?", (old_json.decode(), seeded[0].loan_id))
    store.migrate(connection)
    assert LoanCache(rules).get(connection, seeded[0].loan_id)[0] == state


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(LOAN_TYPES, st.integers(0, 59), st.lists(st.tuples(st.integers(0, 45), st.integers(1, 10**9), MODES),
                                                min_size=2, max_size=5), st.data())
def test_reversing_any_payment_and_replaying_the_rest_is_the_loan_that_never_had_it(
        tmp_path_factory, loan_type, index, plan, data):
    """Fineract's reprocessing: after the reversal of any one payment the loan is the loan that was
    paid only the others (in their order, on their own dates), every posting is balanced, and the
    principal the ledger nets on the loan's principal account is the principal the loan lost."""
    rules = RULES_OF_TYPE[loan_type]
    terms = generate(rules, seed=3, count=60, as_of=AS_OF)[index]
    folder = tmp_path_factory.mktemp("replay")
    paid, never = _fresh_store(folder / "paid.db", terms), _fresh_store(folder / "never.db", terms)
    cache, on, sent = LoanCache(rules), AS_OF, []
    for n, (days, fraction, mode) in enumerate(plan):
        on += timedelta(days=days)
        loan = queries.get_loan(paid, rules, LoanCache(rules), terms.loan_id, on)
        assume(loan.status != loans_pb2.LOAN_STATUS_PAID_OFF)
        amount = max(1, loan.payoff_amount.amount_minor * fraction // 10**9)
        sent.append(payment(f"p{n}", terms.loan_id, amount, terms.currency_code, on.isoformat(), mode=mode))
        [outcome] = _in_transaction(paid, lambda c, p=sent[-1]: apply_batch(c, [p], rules=rules, loans=cache))
        assume(outcome.HasField("applied"))
    postings = [core_pb2.PaymentOutcome.FromString(row[0]).applied.posting
                for row in paid.execute("SELECT result FROM movements ORDER BY seq")]
    k = data.draw(st.integers(0, len(sent) - 1), label="reversed")
    reversal = core_pb2.ReversePaymentRequest(reversal_id="rev", payment_id=f"p{k}", business_date=on.isoformat())
    response = _in_transaction(paid, lambda c: reverse_payment(c, rules, cache, reversal))

    others = [p for n, p in enumerate(sent) if n != k]
    never_cache = LoanCache(rules)
    outcomes = [_in_transaction(never, lambda c, p=p: apply_batch(c, [p], rules=rules, loans=never_cache))[0]
                for p in others]
    assume(all(o.HasField("applied") for o in outcomes))  # never had it: each taken the first time, too
    assert queries.get_loan(paid, rules, LoanCache(rules), terms.loan_id, on) == \
        queries.get_loan(never, rules, LoanCache(rules), terms.loan_id, on)
    assert cache.get(paid, terms.loan_id)[0] == LoanCache(rules).get(paid, terms.loan_id)[0]
    postings += [response.posting, *(r.posting for r in response.revisions)]
    assert all(ledger.is_balanced(p) for p in postings)
    net_principal = sum(amount for account, amount in ledger.net_lines(postings).items()
                        if account.startswith(coa.LOAN_PRINCIPAL))
    before = originate(terms, rules).outstanding_principal
    assert net_principal == before - response.outstanding_balance.amount_minor


def _fresh_store(path: Path, terms: LoanTerms):
    connection = connect(path)
    connection.executescript(store.SCHEMA)
    store.seed_if_empty(connection, [terms])
    return connection
