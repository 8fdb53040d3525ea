"""A loan as its core holds it: the terms it was granted on (never change) and its
state (the schedule of installments and what was paid of each), which every payment
changes and a reversal puts back. The state is stored as compact JSON arrays (msgspec:
a payment reads and writes it, so it must be quick)."""

import calendar
import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import msgspec

from bank.common.v1 import types_pb2
from loan_core.money import annuity_payment, div_half_even, interest_for_days, monthly_interest, ppm_of
from loan_core.rules import ProductRules


@dataclass(frozen=True)
class LoanTerms:
    loan_id: str
    loan_type: types_pb2.LoanType
    borrower_id: str  # opaque id, never a name
    currency_code: str
    principal_minor: int
    annual_rate_bps: int
    term_months: int
    disbursement_date: date  # its day of the month is the due day (the month's last where it has none)
    balloon_minor: int  # paid with the last installment (vehicle balloon loans), else 0
    asset_insurance_minor: int  # monthly property or vehicle insurance, else 0
    installments_paid: int  # how many installments were paid when the portfolio was generated


class Installment(msgspec.Struct, array_like=True):
    number: int
    due: int  # date.toordinal() of the due date
    principal: int
    interest: int
    life_insurance: int
    asset_insurance: int
    fee_charged: int = 0  # the late fee, charged once when the installment falls overdue
    penalty_accrued: int = 0
    penalty_to: int = 0  # ordinal of the date penalty interest is accrued to (0: none yet)
    paid_fee: int = 0
    paid_penalty: int = 0
    paid_interest: int = 0
    paid_insurance: int = 0  # life insurance first, then asset insurance
    paid_principal: int = 0
    # The day (ordinal) its interest runs from when not its period's start: a pago anticipado
    # settles the installment in course on its day, and the next one's interest runs from then.
    start: int = 0

    @property
    def due_date(self) -> date:
        return date.fromordinal(self.due)

    @property
    def insurance(self) -> int:
        return self.life_insurance + self.asset_insurance

    @property
    def outstanding(self) -> int:
        return (
            self.fee_charged - self.paid_fee + self.penalty_accrued - self.paid_penalty
            + self.interest - self.paid_interest + self.insurance - self.paid_insurance
            + self.principal - self.paid_principal
        )

    @property
    def scheduled_total(self) -> int:
        return self.principal + self.interest + self.insurance



class _Stored(msgspec.Struct, array_like=True):
    balloon_minor: int
    prepaid_minor: int
    installments: list[Installment]  # from installment `archived` on
    settled: int = 0
    archived: int = 0  # how many leading installments are stored apart (archive_json)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Stored)
_archive_decoder = msgspec.json.Decoder(list[Installment])


@dataclass(slots=True)
class LoanState:
    terms: LoanTerms
    installments: list[Installment]
    balloon_minor: int  # what is left of the balloon in the last installment
    prepaid_minor: int  # principal paid ahead of schedule, in total
    # How many leading installments are settled. Payments settle installments oldest
    # first, so settled ones are a prefix: nothing reads or changes them again, and a
    # payment on a long mortgage only walks the installments still open.
    settled: int = 0
    # How many leading (settled) installments are stored apart from the state's JSON, so a
    # payment does not rewrite them: a mortgage half paid is half settled installments.
    archived: int = 0

    @property
    def open_installments(self) -> list[Installment]:
        return self.installments[self.settled:]

    @property
    def outstanding_principal(self) -> int:
        return sum(i.principal - i.paid_principal for i in self.open_installments)

    @property
    def paid_off(self) -> bool:
        return all(i.outstanding == 0 for i in self.open_installments)

    def advance_settled(self) -> None:
        while self.settled < len(self.installments) and self.installments[self.settled].outstanding == 0:
            self.settled += 1

    def copy_range(self, start: int, stop: int) -> "LoanState":
        """A copy whose installments[start:stop] are new objects, the others shared: for
        changing only those (settled installments never change; future ones are replaced)."""
        installments = self.installments
        copied = installments[:start] + [copy.copy(i) for i in installments[start:stop]] + installments[stop:]
        return LoanState(self.terms, copied, self.balloon_minor, self.prepaid_minor, self.settled, self.archived)

    def to_json(self) -> str:
        """The state without its first `archived` installments (those are archive_json's)."""
        stored = _Stored(self.balloon_minor, self.prepaid_minor, self.installments[self.archived:], self.settled,
                         self.archived)
        return _encoder.encode(stored).decode()

    def archive_json(self) -> str:
        return _encoder.encode(self.installments[:self.archived]).decode()

    @classmethod
    def from_json(cls, terms: LoanTerms, text: str, archive: Sequence[Installment] = ()) -> "LoanState":
        """The state stored as text; archive holds at least its first `archived` installments
        (an archive written later may hold more: settled installments never change)."""
        stored = _decoder.decode(text)
        if len(archive) < stored.archived:
            raise ValueError(f"loan {terms.loan_id}: {stored.archived} installments archived, {len(archive)} found")
        return cls(terms, list(archive[:stored.archived]) + stored.installments, stored.balloon_minor,
                   stored.prepaid_minor, stored.settled, stored.archived)

    @staticmethod
    def decode_archive(text: str | None) -> list[Installment]:
        return [] if text is None else _archive_decoder.decode(text)


def build_installments(
    terms: LoanTerms, rules: ProductRules, balance: int, first_number: int, count: int,
    balloon: int, payment: int | None = None, start: int | None = None,
) -> list[Installment]:
    """French amortization of balance from installment first_number on, at the monthly
    effective rate. With a payment (reduce term) the installment stays and the schedule ends
    as soon as it can; without one (origination, reduce installment) the payment is computed
    for exactly count months. start: the day (ordinal) the first installment's interest runs
    from, when not its month's start (after a pago anticipado): its interest is for those
    days, its insurance in proportion. The last installment takes whatever principal is left,
    so principal parts sum exactly (and absorb the rounding)."""
    keep_payment = payment is not None
    rate, life_ppm, asset = terms.annual_rate_bps, rules.life_insurance_ppm, terms.asset_insurance_minor
    if payment is None:
        payment = annuity_payment(balance, rate, count, balloon)
    dues = due_ordinals(terms.disbursement_date, terms.term_months)
    installments = []
    for index in range(count):
        number = first_number + index
        due = dues[number - 1]
        life = ppm_of(balance, life_ppm) if life_ppm else 0
        if index == 0 and start is not None:
            month_start = dues[number - 2] if number > 1 else terms.disbursement_date.toordinal()
            interest = interest_for_days(balance, rate, due - start)
            life = div_half_even(life * (due - start), max(due - month_start, 1))
            first_asset = div_half_even(asset * (due - start), max(due - month_start, 1))
        else:
            interest = monthly_interest(balance, rate)
            first_asset = asset
        regular = max(payment - interest, 0)
        last = index == count - 1 or (keep_payment and balance - regular <= balloon)
        principal = balance if last else max(0, min(regular, balance - balloon))  # the balloon waits
        installments.append(Installment(number, due, principal, interest, life, first_asset,
                                        start=start if index == 0 and start is not None else 0))
        balance -= principal
        if last:
            break
    return installments


@functools.lru_cache(maxsize=4096)
def due_ordinals(disbursed: date, months: int) -> tuple[int, ...]:
    """The due dates (as ordinals) of installments 1..months, one a month: the disbursement's
    day of the month, or the month's last day where that day does not exist (disbursed on
    31 January: 28 February, or 29 in a leap year, then 31 March, 30 April). Many loans share them."""
    first_month = disbursed.year * 12 + disbursed.month - 1
    return tuple(_due_in_month(first_month + number, disbursed.day) for number in range(1, months + 1))


@functools.cache
def _due_in_month(month_index: int, day: int) -> int:
    """The ordinal of `day` in month month_index (year * 12 + month - 1), or of its last day."""
    year, month = divmod(month_index, 12)
    return date(year, month + 1, min(day, calendar.monthrange(year, month + 1)[1])).toordinal()


def originate(terms: LoanTerms, rules: ProductRules) -> LoanState:
    """The loan as granted, with its first installments_paid installments paid on time."""
    schedule = build_installments(terms, rules, terms.principal_minor, 1, terms.term_months, terms.balloon_minor)
    for installment in schedule[: terms.installments_paid]:
        installment.paid_interest = installment.interest
        installment.paid_insurance = installment.insurance
        installment.paid_principal = installment.principal
    state = LoanState(terms, schedule, terms.balloon_minor, 0)
    state.advance_settled()
    return state
