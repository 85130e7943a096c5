"""What the booking code calls on a terminal's sale before insert (a Sales Invoice or a POS
Invoice whose lines are in the sale's order): the batches and serial numbers sold, the loyalty
points and coupon used - each refused up front with the reason when it cannot be booked - then
the prices as paid (totals.py). Returns the flag to record on the operation, or None."""

from erp_connect.services.pos.rewards import apply_rewards
from erp_connect.services.pos.totals import match_what_was_paid
from erp_connect.services.pos.tracking import book_serials_and_batches


def prepare_sale(term, invoice, data: dict, op) -> str | None:
	book_serials_and_batches(term, invoice, data)
	apply_rewards(term, invoice, data)
	return match_what_was_paid(term, invoice, data, op)
