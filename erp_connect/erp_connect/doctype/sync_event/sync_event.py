# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class SyncEvent(Document):
	@frappe.whitelist()
	def retry(self):
		from erp_connect.services.events import retry_events

		return retry_events([self.name])

	@frappe.whitelist()
	def replay(self):
		from erp_connect.services.events import replay_events

		return replay_events([self.name])


def on_doctype_update():
	# claim: due events of one connector; order: the events of one document; retention: old deliveries
	frappe.db.add_index("Sync Event", ["connector", "status", "next_attempt_at"])
	frappe.db.add_index("Sync Event", ["reference_doctype", "reference_name", "connector", "seq"])
	frappe.db.add_index("Sync Event", ["status", "delivered_at"])
