"""Reversing an applied payment inside one transaction, Fineract's way: the loan goes back to
the state it had before the payment, and the loan's later payments are applied again, in the
order they were applied and each on its own value date, as if the reversed one had never been.
A later payment whose allocation comes out different gets a revision: its new allocation, and
a posting of the difference for the ledger. A later payment is never refused now (its money
was taken): what it no longer fits, beyond a payoff or on a loan already paid off, is the
customer's credit.
The reversal is recorded as a new movement with the payment's lines (as last revised) swapped.
Idempotent by reversal id: a replay gets the first answer, revisions and all."""

import sqlite3
from datetime import date
from collections.abc import Callable

from bank.common.v1 import errors_pb2, types_pb2
from bank.loans.v1 import loan_core_service_pb2 as core_pb2
from bank.loans.v1 import loans_pb2
from loan_core import engine, ledger, store, validation
from loan_core.apply import LoanCache, digest
from loan_core.loan import LoanState
from loan_core.rules import ProductRules
from paymesh.errors import Refused
from paymesh.topology import CASH_CHANNELS


def reverse_payment(
    connection: sqlite3.Connection, rules: ProductRules, loans: LoanCache, request,
    refusal_of_channel: Callable[[int], errors_pb2.Rejection | None] = lambda channel: None,
) -> core_pb2.ReversePaymentResponse:
    """refusal_of_channel: the caller's bulkhead check; a payment of a channel it does not carry
    cannot be reversed by it (paymesh.authz.Bulkhead)."""
    validation.check_id(request.reversal_id, "reversal_id")
    validation.check_id(request.payment_id, "payment_id")
    validation.check_date(request.business_date, "business_date")
    if len(request.reason) > 500:
        raise Refused(validation.INVALID, "reason must be at most 500 characters", "reason")
    request_digest = digest(request)
    earlier = store.find_movement(connection, request.reversal_id)
    if earlier is not None:
        if earlier[1] == "reversal" and earlier[4] == request_digest:
            return core_pb2.ReversePaymentResponse.FromString(earlier[5])
        raise Refused(errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
                      f"reversal id {request.reversal_id} was already used for a different request", "reversal_id")
    payment = store.find_movement(connection, request.payment_id)
    if payment is None or payment[1] != "payment":
        raise Refused(errors_pb2.ERROR_REASON_PAYMENT_NOT_FOUND,
                      f"no payment {request.payment_id} was applied by {rules.service}", "payment_id")
    seq, _, _, loan_id, _, result, loan_before, reversed_by, channel, currency, amount = payment
    _check_carried(refusal_of_channel, channel)
    if reversed_by is not None:
        raise Refused(errors_pb2.ERROR_REASON_ALREADY_REVERSED,
                      f"payment {request.payment_id} was already reversed by {reversed_by}", "payment_id")
    found = loans.get(connection, loan_id)
    assert found is not None, "a payment's loan is never deleted"
    _, state_now = found
    later = store.later_live_payments(connection, loan_id, seq)
    restored = loans.restore(loan_id, loan_before)
    applied, revisions = _as_last_revised(connection, request.payment_id, result)
    response = core_pb2.ReversePaymentResponse(
        reversal_id=request.reversal_id,
        payment_id=request.payment_id,
        loan_id=loan_id,
        posting=ledger.reversal_posting(request.reversal_id, request.business_date, applied.posting,
                                        [r.posting for r in revisions]),
        allocation=revisions[-1].allocation if revisions else applied.allocation,
    )
    state = restored
    for payment_after in later:
        state = _apply_again(connection, rules, state, payment_after, request, response)
    if later:
        loans.put(loan_id, state)
    response.outstanding_balance.CopyFrom(
        types_pb2.Money(currency_code=currency, amount_minor=state.outstanding_principal))
    store.insert_movement(connection, request.reversal_id, "reversal", request.payment_id, loan_id,
                          request.business_date, channel, currency, amount, request_digest,
                          response.SerializeToString(), state_now)
    store.mark_reversed(connection, request.payment_id, request.reversal_id)
    loans.write_back(connection)
    return response


def _apply_again(connection: sqlite3.Connection, rules: ProductRules, state: LoanState,
                 payment: store.LaterPayment, request, response: core_pb2.ReversePaymentResponse) -> LoanState:
    """Applies a later payment again on the loan without the reversed one; records a revision
    in the response if its allocation changed. Returns the loan after it."""
    store.set_loan_before(connection, payment.movement_id, state.to_json())
    applied, revisions = _as_last_revised(connection, payment.movement_id, payment.result)
    new_state, allocation = engine.apply_payment(
        state, rules, payment.amount_minor, date.fromisoformat(payment.value_date),
        payment.prepayment_mode, surplus_allowed=payment.channel in CASH_CHANNELS, replaying=True)
    currency = applied.amount.currency_code
    number = len(revisions) + 1
    revision_id = f"{payment.movement_id}:R{number}"
    now = ledger.payment_posting(revision_id, payment.movement_id, request.business_date, payment.channel,
                                 currency, allocation, rules)
    difference = ledger.revision_posting(revision_id, request.business_date,
                                         [applied.posting, *(r.posting for r in revisions)], now)
    if difference is not None:
        revision = response.revisions.add(
            revision_id=revision_id, payment_id=payment.movement_id, loan_id=applied.loan_id, revision=number,
            channel=payment.channel,
            amount=applied.amount,
            allocation_before=revisions[-1].allocation if revisions else applied.allocation,
            allocation=loans_pb2.Allocation(**allocation.fields()),
            outstanding_balance=types_pb2.Money(currency_code=currency, amount_minor=new_state.outstanding_principal),
            posting=difference, business_date=request.business_date,
        )
        store.insert_revision(connection, revision_id, payment.movement_id, number, request.reversal_id,
                              applied.loan_id, request.business_date, revision.SerializeToString())
    return new_state


def _as_last_revised(connection: sqlite3.Connection, payment_id: str, result: bytes
                     ) -> tuple[core_pb2.AppliedPayment, list[core_pb2.PaymentRevision]]:
    """A payment as first applied, and its revisions since, the first first."""
    applied = core_pb2.PaymentOutcome.FromString(result).applied
    return applied, [core_pb2.PaymentRevision.FromString(r) for r in store.revisions_of(connection, payment_id)]


def _check_carried(refusal_of_channel, channel: int) -> None:
    refused = refusal_of_channel(channel)
    if refused is not None:
        raise Refused(refused.reason, refused.message, "channel")

