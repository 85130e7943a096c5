"""Offline POS the way ERPNext's own POS runs a store, for terminals whose Booking is "POS Invoice
with shifts": a ``shift_open`` becomes a submitted POS Opening Entry (the cash in the drawer per
mode of payment), the shift's sales and returns become POS Invoices, and the ``shift_close`` a POS
Closing Entry built by ERPNext (make_closing_entry_from_opening) with the cash counted and the
difference per mode of payment. ERPNext's own merge (POS Invoice Merge Logs) then consolidates
the shift's POS Invoices into Sales Invoices in a job of its own; a failure is recorded on the
closing entry (status Failed, its error) and on the close operation, where Retry Consolidation
runs the merge again.

The rule for a sale that cannot go into an open shift - it names none, its shift was closed
before it arrived (a terminal offline across a closing made in Desk, a failed sale retried after
the close), or it returns an invoice that is not a POS Invoice: it is booked as a plain POS Sales
Invoice dated as sold, flagged, with a ToDo for an Accounts Manager. Never dropped, never refused.
"""

import frappe
from frappe import _
from frappe.utils import add_to_date, flt, now_datetime, strip_html

from erp_connect.engine import pos_rules
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.pos.documents import (
	APPLIERS,
	SERIES_NAMED,
	apply_sales_invoice,
	done_dependency,
	invoice_values,
	original_invoice,
)
from erp_connect.services.pos.ledger import APPLIED, FLAGGED, update_counts
from erp_connect.services.pos.review import review_task
from erp_connect.services.pos.sale import prepare_sale
from erp_connect.services.pos.stock import submit_with_stock_policy
from erp_connect.services.pos.totals import join_flags

SHIFTS = "POS Invoice with shifts"
CONSOLIDATE = "erp_connect.services.pos.shifts.consolidate"
STALE_MINUTES = 10  # a consolidation still queued after this long lost its worker: queued again


def books_shifts(term) -> bool:
	return term.get("booking") == SHIFTS


def appliers(term) -> dict:
	"""What each operation type becomes for this terminal's booking."""
	if books_shifts(term):
		return {
			**APPLIERS,
			pos_rules.SALES_INVOICE: apply_sale,
			pos_rules.SHIFT_OPEN: apply_open,
			pos_rules.SHIFT_CLOSE: apply_close,
		}
	return {
		**APPLIERS,
		pos_rules.SALES_INVOICE: apply_sales_invoice_of_a_shift,
		pos_rules.SHIFT_OPEN: without_shifts,
		pos_rules.SHIFT_CLOSE: without_shifts,
	}


def series_named(term) -> dict:
	"""The operation types whose document names are reserved at claim time: a POS Invoice takes
	its own name (a sale may still become a Sales Invoice, of another series)."""
	if books_shifts(term):
		return {k: v for k, v in SERIES_NAMED.items() if k != pos_rules.SALES_INVOICE}
	return SERIES_NAMED


def apply_sales_invoice_of_a_shift(term, data: dict, op):
	"""A Sales Invoice terminal's sale; one that names a shift fails with its shift's reason."""
	if data.get("shift_client_id"):
		done_dependency(term.name, data["shift_client_id"])
	return apply_sales_invoice(term, data, op)


def without_shifts(term, data: dict, op):
	frappe.throw(
		_("POS Terminal {0} books Sales Invoices: set its Booking to {1} to open and close shifts").format(
			term.name, _(SHIFTS)
		)
	)


# -- open ------------------------------------------------------------------------------------------
def apply_open(term, data: dict, op) -> tuple[str, str, str | None]:
	amounts = {row["mode_of_payment"]: row["amount"] for row in data["opening_amounts"]}
	modes = [p.mode_of_payment for p in frappe.get_cached_doc("POS Profile", term.pos_profile).payments]
	still_open = [
		name
		for name in frappe.get_all(
			"POS Opening Entry",
			{"pos_profile": term.pos_profile, "user": term.api_user, "status": "Open", "docstatus": 1},
			pluck="name",
		)
		if not closing_of(name)
	]
	entry = frappe.get_doc(
		{
			"doctype": "POS Opening Entry",
			"company": term.company,
			"pos_profile": term.pos_profile,
			"user": term.api_user,
			"period_start_date": op.client_timestamp,
			"set_posting_date": 1,
			"posting_date": op.client_timestamp.date(),
			"balance_details": [
				{"mode_of_payment": mode, "opening_amount": amounts.get(mode, 0)}
				for mode in dict.fromkeys([*modes, *amounts])
			],
		}
	)
	entry.flags.erp_connect_origin = term.connector
	entry.insert()
	entry.submit()
	flag = None
	if still_open:
		flag = _("an earlier shift of this terminal is still open: {0}").format(", ".join(still_open))
	return "POS Opening Entry", entry.name, flag


def closing_of(opening: str) -> str | None:
	"""The submitted POS Closing Entry of a shift, made by the terminal or in Desk. (ERPNext marks
	the opening entry Closed only once the consolidation succeeded.)"""
	return frappe.db.get_value("POS Closing Entry", {"pos_opening_entry": opening, "docstatus": 1}, "name")


# -- sales and returns -----------------------------------------------------------------------------
def apply_sale(term, data: dict, op) -> tuple[str, str, str | None]:
	shift = data.get("shift_client_id")
	opening = done_dependency(term.name, shift) if shift else None
	closed_by = opening and closing_of(opening)
	original = original_invoice(term.name, data)
	if not shift:
		reason = _("it names no shift")
	elif closed_by:
		reason = _("its shift {0} was closed by {1} before it arrived").format(opening, closed_by)
	elif original and not frappe.db.exists("POS Invoice", original):
		reason = _("it returns {0}, which is not a POS Invoice").format(original)
	else:
		invoice = frappe.get_doc({"doctype": "POS Invoice", **invoice_values(term, data, op, original)})
		invoice.flags.erp_connect_origin = term.connector
		total_flag = prepare_sale(term, invoice, data, op)
		set_paid_amount(invoice)
		invoice.insert()
		invoice.submit()  # ERPNext checks the stock, counting what open POS Invoices reserve
		return "POS Invoice", invoice.name, total_flag
	return book_outside_shift(term, data, op, original, reason)


def set_paid_amount(invoice) -> None:
	"""What ERPNext's POS screen works out before it saves a POS Invoice (its server side does not)."""
	rate = _conversion_rate(invoice)
	for payment in invoice.payments:
		payment.base_amount = flt(payment.amount) * rate
	invoice.paid_amount = sum(flt(p.amount) for p in invoice.payments)
	invoice.base_paid_amount = invoice.paid_amount * rate


def _conversion_rate(invoice) -> float:
	"""1 for a sale in the company's currency (the profile's, the customer's and the price list's
	currency are all the company's), known without ERPNext's set_missing_values, which looks up
	every line's item details again; otherwise the rate set_missing_values works out."""
	company_currency = frappe.get_cached_value("Company", invoice.company, "default_currency")
	currencies = (
		frappe.get_cached_value("POS Profile", invoice.pos_profile, "currency"),
		frappe.get_cached_value("Customer", invoice.customer, "default_currency"),
		frappe.get_cached_value("Price List", invoice.selling_price_list, "currency"),
	)
	if all(currency in (None, "", company_currency) for currency in currencies):
		return 1
	invoice.set_missing_values()
	return flt(invoice.conversion_rate) or 1


def book_outside_shift(term, data: dict, op, original: str | None, reason: str):
	"""A plain POS Sales Invoice, dated as sold, flagged and with a ToDo."""
	if original and frappe.db.exists("POS Invoice", original):
		# a return of a shift's sale: against the Sales Invoice it was consolidated into, if yet
		original = frappe.db.get_value("POS Invoice", original, "consolidated_invoice")
	invoice = frappe.get_doc({"doctype": "Sales Invoice", **invoice_values(term, data, op, original)})
	invoice.flags.erp_connect_origin = term.connector
	total_flag = prepare_sale(term, invoice, data, op)
	invoice.insert()
	stock_flag = submit_with_stock_policy(term, invoice)
	flag = _("booked as a POS Sales Invoice outside the shifts: {0}").format(reason)
	review_task(
		"Accounts Manager", "Sales Invoice", invoice.name, _("{0} (terminal {1})").format(flag, term.name)
	)
	return "Sales Invoice", invoice.name, join_flags(flag, total_flag, stock_flag)


# -- close -----------------------------------------------------------------------------------------
def apply_close(term, data: dict, op) -> tuple[str, str, str | None]:
	from erpnext.accounts.doctype.pos_closing_entry.pos_closing_entry import (
		make_closing_entry_from_opening,
	)

	opening = done_dependency(term.name, data["shift_client_id"])
	counted = {row["mode_of_payment"]: row["amount"] for row in data["closing_amounts"]}
	existing = closing_of(opening)
	if existing:  # closed in Desk: the operation points at the shift, not at a closing of its own
		flag = _("the shift was already closed by {0}; the cash the terminal counted was not booked: {1}")
		return "POS Opening Entry", opening, flag.format(existing, _amounts_text(counted))
	closing = make_closing_entry_from_opening(frappe.get_doc("POS Opening Entry", opening))
	closing.posting_date, closing.posting_time = op.client_timestamp.date(), op.client_timestamp.time()
	for row in closing.payment_reconciliation:
		row.closing_amount = counted.pop(row.mode_of_payment, 0)
		row.difference = row.closing_amount - row.expected_amount
	for mode, amount in counted.items():  # counted, though nothing was expected in it
		closing.append(
			"payment_reconciliation",
			{
				"mode_of_payment": mode,
				"opening_amount": 0,
				"expected_amount": 0,
				"closing_amount": amount,
				"difference": amount,
			},
		)
	closing.flags.erp_connect_origin = term.connector
	closing.insert()
	# ERPNext's on_submit merges at once and commits inside (or queues a job that may start before
	# this commits): the merge would escape this operation's transaction, and a lost claim could no
	# longer undo it. The closing entry is submitted here; its merge runs after the commit.
	closing.on_submit = lambda: None
	closing.submit()
	closing.set_status(update=True, status="Queued")
	enqueue_consolidation(closing.name)
	return "POS Closing Entry", closing.name, closing_flag(closing.name)


def dated_after(closing) -> str | None:
	"""ERPNext closes with the POS Invoices dated up to now: a terminal whose clock runs ahead
	leaves its latest sales out, open for the next closing of its profile and user. Named here."""
	later = frappe.db.sql_list(
		"""select name from `tabPOS Invoice`
		where owner = %s and pos_profile = %s and docstatus = 1 and ifnull(consolidated_invoice, '') = ''
			and timestamp(posting_date, posting_time) > %s""",
		(closing.user, closing.pos_profile, closing.period_end_date),
	)
	if not later:
		return None
	return _("dated after the closing (is the terminal's clock ahead?), left for the next: {0}").format(
		", ".join(later)
	)


def _amounts_text(amounts: dict) -> str:
	return ", ".join(f"{mode} {amount:.2f}" for mode, amount in amounts.items()) or "-"


def closing_flag(closing: str) -> str | None:
	"""What someone should look at in a closing: cash that differs from what was expected, sales
	left for the next closing, a consolidation that failed."""
	differences = frappe.get_all(
		"POS Closing Entry Detail",
		{"parent": closing, "parenttype": "POS Closing Entry", "difference": ("!=", 0)},
		["mode_of_payment", "difference"],
		order_by="idx",
	)
	parts = []
	if differences:
		text = ", ".join(f"{d.mode_of_payment} {d.difference:+.2f}" for d in differences)
		parts.append(_("cash counted differs from the expected: {0}").format(text))
	later = dated_after(frappe.get_doc("POS Closing Entry", closing))
	if later:
		parts.append(later)
	status, error = frappe.db.get_value("POS Closing Entry", closing, ["status", "error_message"])
	if status == "Failed":
		parts.append(
			_("consolidation failed: {0} - correct it and press Retry Consolidation").format(
				strip_html(error or "")
			)
		)
	return "; ".join(parts) or None


# -- consolidation ---------------------------------------------------------------------------------
def enqueue_consolidation(closing: str) -> None:
	frappe.enqueue(
		CONSOLIDATE,
		queue="long",
		timeout=3600,
		job_id=f"erp_connect:pos-closing:{closing}",
		deduplicate=True,
		enqueue_after_commit=True,
		closing=closing,
	)


def consolidate(closing: str) -> None:
	"""ERPNext's own merge of the closing's POS Invoices into Sales Invoices (create_merge_logs, as
	its closing entry runs on submit), as the terminal's user; the outcome is recorded on the
	terminal's close operation. One merge per closing at a time."""
	from erpnext.accounts.doctype.pos_invoice_merge_log.pos_invoice_merge_log import (
		create_merge_logs,
		get_invoice_customer_map,
	)

	op = close_operation(closing)
	if not op:
		return
	with named_lock("pos-closing", closing, 0) as taken:
		if not taken:
			return  # another job is merging it
		doc = frappe.get_doc("POS Closing Entry", closing)
		if doc.docstatus == 1 and doc.status in ("Queued", "Failed"):
			term = frappe.get_doc("POS Terminal", op.terminal)
			try:
				with run_as_api_user(term.api_user, _("POS Terminal {0}").format(term.name)):
					create_merge_logs(get_invoice_customer_map(doc.pos_transactions), doc)
			except Exception as e:
				frappe.db.rollback()  # ERPNext rolled its merge back and committed status Failed
				if frappe.db.get_value("POS Closing Entry", closing, "status") != "Failed":
					doc.set_status(update=True, status="Failed")  # it failed before ERPNext began
					doc.db_set("error_message", str(e))
			finally:
				frappe.local.message_log = []
		record_consolidation(op, closing)
		frappe.db.commit()


def close_operation(closing: str):
	return frappe.db.get_value(
		"POS Operation",
		{
			"reference_doctype": "POS Closing Entry",
			"reference_name": closing,
			"op_type": pos_rules.SHIFT_CLOSE,
		},
		["name", "terminal"],
		as_dict=True,
	)


def record_consolidation(op, closing: str) -> None:
	flag = closing_flag(closing)
	frappe.db.set_value(
		"POS Operation",
		op.name,
		{"status": FLAGGED if flag else APPLIED, "flag": flag},
		update_modified=False,
	)
	update_counts(op.terminal)


def retry_consolidation(op_name: str) -> None:
	"""Merge a closing whose consolidation failed again (from Desk, after correcting the cause)."""
	closing = frappe.db.get_value(
		"POS Operation", {"name": op_name, "reference_doctype": "POS Closing Entry"}, "reference_name"
	)
	status = closing and frappe.db.get_value("POS Closing Entry", closing, "status")
	if status not in ("Failed", "Queued"):
		frappe.throw(
			_("Only a closing whose consolidation failed can be retried; this one is {0}").format(
				_(status or "-")
			)
		)
	enqueue_consolidation(closing)


def sweep() -> None:
	"""Every minute: merge again the closings whose merge lost its worker, and bring the close
	operations up to date with closings retried from ERPNext's own closing entry form."""
	now = now_datetime()
	for closing, status, modified in frappe.db.sql(
		"""select name, status, modified from `tabPOS Closing Entry`
		where docstatus = 1 and (status = 'Queued' or modified > %s)""",
		add_to_date(now, minutes=-2),
	):
		op = close_operation(closing)
		if not op:
			continue  # a closing made in Desk: ERPNext's own
		if status == "Queued" and modified < add_to_date(now, minutes=-STALE_MINUTES):
			enqueue_consolidation(closing)
		elif status != "Queued":
			record_consolidation(op, closing)
	frappe.db.commit()
