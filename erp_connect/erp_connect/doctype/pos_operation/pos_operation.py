# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class POSOperation(Document):
	"""One operation a terminal recorded offline: the ledger row that makes replays harmless."""

	@frappe.whitelist()
	def retry(self, payload: str | None = None) -> None:
		"""Apply a failed operation again, with its data corrected in Desk when given."""
		self.check_permission("write")
		from erp_connect.services.pos.ledger import retry

		retry(self.name, payload)


def on_doctype_update():
	frappe.db.add_index("POS Operation", ["terminal", "status", "client_timestamp"], "terminal_queue")
