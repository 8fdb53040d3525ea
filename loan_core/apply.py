"""Applying a micro-batch of payments inside one SQLite transaction (the caller commits),
exactly once per payment id: a replay gets its first answer back, unchanged; the same id
with another body is refused. A refused payment changes no loan. A refusal that depended
on the loan's state then (paid off, above the payoff, a product rule) is recorded, so a
replay after a crash gets the same answer even though the loan has moved on since; a
refusal of the request's own fields is not, as it comes out the same every time."""

import hashlib
import logging
import sqlite3
from collections import OrderedDict

from bank.common.v1 import errors_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from loan_core import engine, ledger, store, validation
from paymesh.errors import Refused
from paymesh.postgres import STORE_FAILURES, pipelined
from paymesh.topology import CASH_CHANNELS
from loan_core.loan import LoanState, originate
from loan_core.rules import ProductRules

log = logging.getLogger(__name__)


# A loan's settled installments move to its archive column once this many have settled since
# the last move: the archive is then rewritten whole, so not at every payment, while the state
# each payment writes (and keeps as the before-image for a reversal) carries only a few of them.
ARCHIVE_EVERY = 12


class LoanCache:
    """Loans as last committed (LRU), so a payment needs no read-and-decode of its loan.
    Only the store's thread uses it; the core is its file's only writer. Whatever a
    transaction changed is written back before COMMIT; if the transaction fails, the
    group commit calls forget_all(), since the cache may then hold what was rolled back."""

    def __init__(self, rules: ProductRules, max_installments: int = 300_000):
        self._rules = rules
        # Bounded by installments, not loans: a mortgage holds ten times a cash loan's
        # (300,000 installments are about 80 MB).
        self._max_installments = max_installments
        self._installments = 0
        self._loans: OrderedDict[str, tuple[LoanState, str | None]] = OrderedDict()
        self._dirty: set[str] = set()
        self._archive_dirty: set[str] = set()

    def get(self, connection: sqlite3.Connection, loan_id: str) -> tuple[LoanState, str | None] | None:
        """(the loan's state, its JSON as stored now) or None for an unknown loan."""
        if loan_id in self._loans:
            self._loans.move_to_end(loan_id)
            return self._loans[loan_id]
        found = store.load_loan(connection, loan_id)
        if found is None:
            return None
        terms, state_json, archive_json = found
        if state_json is None:
            state = originate(terms, self._rules)
        else:
            state = LoanState.from_json(terms, state_json, LoanState.decode_archive(archive_json))
        self._remember(loan_id, (state, state_json))
        return self._loans[loan_id]

    def put(self, loan_id: str, state: LoanState) -> None:
        """Keeps a loan's new state (the cache's own from now on) to be written back."""
        if state.settled - state.archived >= ARCHIVE_EVERY:
            state.archived = state.settled
            self._archive_dirty.add(loan_id)
        self._remember(loan_id, (state, state.to_json()))
        self._dirty.add(loan_id)

    def restore(self, loan_id: str, state_json: str | None) -> LoanState:
        """Puts a loan (already read) back to a state stored earlier (None: as originated);
        returns that state. Its archived installments are the loan's first ones now: settled,
        they never changed (the archive column may hold more of them; the state says how many
        are its own)."""
        now = self._loans[loan_id][0]
        if state_json is None:
            state = originate(now.terms, self._rules)
        else:
            state = LoanState.from_json(now.terms, state_json, now.installments)
        self._remember(loan_id, (state, state_json))
        self._dirty.add(loan_id)
        return state

    def write_back(self, connection: sqlite3.Connection) -> None:
        for loan_id in self._dirty:
            state, state_json = self._loans[loan_id]
            if loan_id in self._archive_dirty:
                store.save_state_and_archive(connection, loan_id, state_json, state.archive_json())
            else:
                store.save_state(connection, loan_id, state_json)
        self._dirty.clear()
        self._archive_dirty.clear()

    def forget_all(self) -> None:
        self._loans.clear()
        self._dirty.clear()
        self._archive_dirty.clear()
        self._installments = 0

    def _remember(self, loan_id: str, entry) -> None:
        if loan_id in self._loans:
            self._installments -= len(self._loans[loan_id][0].installments)
        self._loans[loan_id] = entry
        self._loans.move_to_end(loan_id)
        self._installments += len(entry[0].installments)
        # The oldest go first; loans changed in this transaction are the newest, and kept.
        while self._installments > self._max_installments and next(iter(self._loans)) not in self._dirty:
            _, (state, _) = self._loans.popitem(last=False)
            self._installments -= len(state.installments)


def digest(message) -> bytes:
    return hashlib.sha256(message.SerializeToString(deterministic=True)).digest()


def apply_batches(connection: sqlite3.Connection, batches, *, rules: ProductRules,
                  loans: LoanCache) -> list[list[core_pb2.PaymentOutcome]]:
    """Each stream message's payments, in one transaction (a group commit): their outcomes."""
    with pipelined(connection):
        return [apply_batch(connection, payments, rules=rules, loans=loans) for payments in batches]


def apply_batch(connection: sqlite3.Connection, payments, *, rules: ProductRules,
                loans: LoanCache) -> list[core_pb2.PaymentOutcome]:
    earlier = store.find_decisions(connection, [p.payment_id for p in payments])
    outcomes = []
    for payment in payments:
        try:
            outcomes.append(_apply_one(connection, rules, loans, earlier, payment))
        except Refused as refused:
            outcomes.append(core_pb2.PaymentOutcome(payment_id=payment.payment_id, rejection=refused.rejection()))
        except STORE_FAILURES:
            raise  # the store failed: the whole transaction rolls back
        except Exception:
            # A bug on one payment must not fail everyone's group commit. Nothing of it was
            # written (the writes come last) and nothing is kept, so it can be sent again.
            log.exception("payment could not be applied", extra={"payment_id": payment.payment_id[:128]})
            outcomes.append(core_pb2.PaymentOutcome(payment_id=payment.payment_id, rejection=errors_pb2.Rejection(
                reason=errors_pb2.ERROR_REASON_UNSPECIFIED,
                message="the core could not apply this payment (an internal error); it was not applied")))
    loans.write_back(connection)
    return outcomes


def _apply_one(connection, rules: ProductRules, loans: LoanCache, earlier: dict, payment) -> core_pb2.PaymentOutcome:
    """earlier: the batch's movements already stored, by id (this adds the ones it applies)."""
    validation.check_id(payment.payment_id, "payment_id")
    request_digest = digest(payment)
    if payment.payment_id in earlier:
        kind, stored_digest, result = earlier[payment.payment_id]
        if kind in ("payment", "refusal") and stored_digest == request_digest:
            return core_pb2.PaymentOutcome.FromString(result)
        raise Refused(errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                      f"payment id {payment.payment_id} was already used for a different payment", "payment_id")
    business_date = validation.check_payment_fields(payment)
    # Dues, fees and penalty interest run to the day the customer paid, not the day it is booked:
    # an agent's customer who paid on the due date is not late because the file came the next day.
    value_date = validation.check_date(payment.value_date, "value_date") if payment.value_date else business_date
    validation.check_loan_id(payment.loan_id, rules)
    found = loans.get(connection, payment.loan_id)
    if found is None:
        raise Refused(errors_pb2.ERROR_REASON_LOAN_NOT_FOUND, f"loan {payment.loan_id} does not exist", "loan_id")
    state, state_json = found
    currency = state.terms.currency_code
    if payment.amount.currency_code != currency:
        raise Refused(errors_pb2.ERROR_REASON_CURRENCY_MISMATCH,
                      f"loan {payment.loan_id} is in {currency}; the payment is in {payment.amount.currency_code}",
                      "amount.currency_code")
    try:
        new_state, allocation = engine.apply_payment(
            state, rules, payment.amount.amount_minor, value_date, payment.prepayment_mode,
            surplus_allowed=payment.channel in CASH_CHANNELS,
        )
    except Refused as refused:  # refused by the loan's state: keep the answer for replays
        outcome = core_pb2.PaymentOutcome(payment_id=payment.payment_id, rejection=refused.rejection())
        result = outcome.SerializeToString()
        store.insert_refusal(connection, payment.payment_id, payment.loan_id, payment.business_date,
                             request_digest, result)
        earlier[payment.payment_id] = ("refusal", request_digest, result)
        return outcome
    posting = ledger.payment_posting_fields(payment.payment_id, payment.payment_id, payment.business_date,
                                            payment.channel, currency, allocation, rules)
    # Built in one call from plain fields: a nested message made first would be copied in again.
    outcome = core_pb2.PaymentOutcome(payment_id=payment.payment_id, applied={
        "loan_id": payment.loan_id,
        "amount": payment.amount,
        "allocation": allocation.fields(),
        "outstanding_balance": {"currency_code": currency, "amount_minor": new_state.outstanding_principal},
        "posting": posting,
        "business_date": payment.business_date,
    })
    result = outcome.SerializeToString()
    store.insert_movement(connection, payment.payment_id, "payment", payment.payment_id, payment.loan_id,
                          payment.business_date, payment.channel, currency, payment.amount.amount_minor,
                          request_digest, result, state_json, value_date.isoformat(), payment.prepayment_mode)
    earlier[payment.payment_id] = ("payment", request_digest, result)
    loans.put(payment.loan_id, new_state)
    return outcome
