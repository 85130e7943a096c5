# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class SyncEvent(Document):
	@frappe.whitelist()
	def retry(self):
		from erp_connect.services.push.events import retry_events

		return retry_events([self.name])

	@frappe.whitelist()
	def replay(self):
		from erp_connect.services.push.events import replay_events

		return replay_events([self.name])

	@frappe.whitelist()
	def origin(self) -> tuple[str, str] | None:
		"""The Inbound Request, Sync Import, Sync Run or POS Operation this event came from."""
		self.check_permission("read")
		from erp_connect.services.common.correlation import origin

		return origin(self.correlation_id) if self.correlation_id else None


# index names the claim query forces (services/push/delivery.py)
UNFINISHED_INDEX = "unfinished_by_connector"
RULE_UNFINISHED_INDEX = "unfinished_by_rule"  # where the claim walk starts: enabled rules only
DOCUMENT_INDEX = "events_of_document"


def on_doctype_update():
	# where a connector's unfinished events start; a document's events in order; old deliveries
	frappe.db.add_index("Sync Event", ["connector", "status", "name"], UNFINISHED_INDEX)
	frappe.db.add_index("Sync Event", ["connector", "sync_rule", "status", "name"], RULE_UNFINISHED_INDEX)
	frappe.db.add_index(
		"Sync Event", ["reference_doctype", "reference_name", "connector", "seq"], DOCUMENT_INDEX
	)
