# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class SyncEvent(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempts: DF.Int
		claim_token: DF.Data | None
		connector: DF.Link | None
		correlation_id: DF.Data | None
		delivered_at: DF.Datetime | None
		doc_event: DF.Data | None
		event_id: DF.Data | None
		last_error: DF.SmallText | None
		last_response: DF.Code | None
		last_status_code: DF.Int
		lease_until: DF.Datetime | None
		next_attempt_at: DF.Datetime | None
		payload: DF.Code | None
		reference_doctype: DF.Link | None
		reference_name: DF.DynamicLink | None
		seq: DF.Int
		status: DF.Literal["Pending", "Sending", "Retrying", "Delivered", "Dead", "Dry Run"]
		sync_rule: DF.Link | None

	# end: auto-generated types
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
