# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class POSOperation(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		applied_at: DF.Datetime | None
		attempts: DF.Int
		claim_token: DF.Data | None
		client_id: DF.Data
		client_timestamp: DF.Datetime | None
		content_hash: DF.Data | None
		depends_on: DF.SmallText | None
		erpnext_total: DF.Currency
		error: DF.SmallText | None
		flag: DF.SmallText | None
		lease_until: DF.Datetime | None
		paid_total: DF.Currency
		op_type: DF.Literal["customer", "sales_invoice", "stock_adjustment", "shift_open", "shift_close"]
		payload: DF.Code | None
		received_at: DF.Datetime | None
		reference_doctype: DF.Link | None
		reference_name: DF.DynamicLink | None
		reserved_name: DF.Data | None
		status: DF.Literal["Queued", "Applying", "Applied", "Flagged", "Failed"]
		terminal: DF.Link
		total_difference: DF.SmallText | None
		total_differs: DF.Check
	# end: auto-generated types
	"""One operation a terminal recorded offline: the ledger row that makes replays harmless."""

	@frappe.whitelist()
	def retry(self, payload: str | None = None) -> None:
		"""Apply a failed operation again, with its data corrected in Desk when given."""
		self.check_permission("write")
		from erp_connect.services.pos.ledger import retry

		retry(self.name, payload)

	@frappe.whitelist()
	def retry_consolidation(self) -> None:
		"""Merge the POS Invoices of a closing whose consolidation failed again, in the background."""
		self.check_permission("write")
		from erp_connect.services.pos.shifts import retry_consolidation

		retry_consolidation(self.name)


def on_doctype_update():
	frappe.db.add_index("POS Operation", ["terminal", "status", "client_timestamp"], "terminal_queue")
	frappe.db.add_index("POS Operation", ["reference_name"])  # a closing's close operation
