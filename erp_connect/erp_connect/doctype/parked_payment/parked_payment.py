# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document


class ParkedPayment(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		allocated_by: DF.Link | None
		amount: DF.Currency
		connector: DF.Link
		currency: DF.Link | None
		email: DF.Data | None
		event_id: DF.Data | None
		event_type: DF.Data | None
		fee: DF.Currency
		inbound_request: DF.Link | None
		kind: DF.Literal["Payment", "Refund"]
		payment_entry: DF.Link | None
		payment_id: DF.Data | None
		posted_at: DF.Int
		provider: DF.Data | None
		reason: DF.SmallText | None
		reference_doctype: DF.Data | None
		reference_name: DF.Data | None
		status: DF.Literal["Open", "Allocated", "Ignored"]
		transaction_id: DF.Data
	# end: auto-generated types

	@frappe.whitelist()
	def allocate(self, reference_name: str, reference_doctype: str = "Sales Invoice") -> str:
		"""Record this payment (or refund) against a Sales Invoice or Sales Order someone chose;
		returns the Payment Entry. For Connect Managers; the entry is written as the connector's
		API user, like the ones its webhooks make."""
		self.check_manager()
		from erp_connect.services.payments import parked

		return parked.allocate(self, reference_doctype, reference_name)

	@frappe.whitelist()
	def ignore(self) -> None:
		"""Nothing is to be recorded for this payment (a test payment, one booked by hand)."""
		self.check_manager()
		if self.status != "Open":
			frappe.throw(_("Parked Payment {0} is {1} already").format(self.name, _(self.status)))
		self.db_set("status", "Ignored")

	def check_manager(self) -> None:
		from erp_connect.install import CONNECT_MANAGER

		self.check_permission("write")
		if CONNECT_MANAGER not in frappe.get_roles():
			raise frappe.PermissionError(_("Only a {0} may allocate parked payments").format(CONNECT_MANAGER))
