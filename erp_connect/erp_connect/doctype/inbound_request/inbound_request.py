# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class InboundRequest(Document):
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
