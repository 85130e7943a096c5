# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class InboundRequest(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempts: DF.Int
		body: DF.Code | None
		body_hash: DF.Data | None
		connector: DF.Link
		delivery_id: DF.Data
		error: DF.SmallText | None
		headers: DF.Code | None
		next_attempt_at: DF.Datetime | None
		processed_at: DF.Datetime | None
		received_at: DF.Datetime | None
		result: DF.Code | None
		status: DF.Literal["Received", "Processed", "Failed"]

	# end: auto-generated types
	@frappe.whitelist()
	def retry(self):
		"""Process this request again now (Desk button)."""
		from erp_connect.services.inbound import inbox

		self.check_permission("write")
		inbox.process(self.name)


def on_doctype_update():
	# a delivery id is processed once per connector, however often it arrives
	frappe.db.add_unique("Inbound Request", ["connector", "delivery_id"], "connector_delivery")
	# and a body signed without id or timestamp once (NULL for the schemes that sign those)
	frappe.db.add_unique("Inbound Request", ["connector", "body_hash"], "connector_body")
	frappe.db.add_index("Inbound Request", ["status", "modified"], "by_status")
