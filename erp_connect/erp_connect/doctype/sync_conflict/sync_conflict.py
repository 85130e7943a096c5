# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import json

import frappe
from frappe import _
from frappe.model.document import Document


class SyncConflict(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		connector: DF.Link
		detected_at: DF.Datetime | None
		erpnext_data: DF.Code | None
		external_id: DF.Data | None
		pull_rule: DF.Link | None
		reference_doctype: DF.Link
		reference_name: DF.DynamicLink | None
		remote_data: DF.Code | None
		resolved_by: DF.Link | None
		status: DF.Literal["Open", "Remote Applied", "ERPNext Kept"]
	# end: auto-generated types
	"""A record both sides changed since the last sync, parked for a person to decide."""

	@frappe.whitelist()
	def apply_remote(self) -> None:
		"""Write the remote version over ERPNext's."""
		self.check_open()
		from erp_connect.services.inbound.conflicts import local_hash

		data = json.loads(self.remote_data)
		doc = frappe.get_doc(self.reference_doctype, self.reference_name)
		doc.update(data)
		doc.flags.erp_connect_origin = self.connector  # not pushed back to where it came from
		doc.save()
		self.set_link_baseline(local_hash(doc, data))
		self.close("Remote Applied")

	@frappe.whitelist()
	def keep_erpnext(self) -> None:
		"""Keep ERPNext's version; later remote changes compare against it."""
		self.check_open()
		from erp_connect.services.inbound.conflicts import local_hash

		doc = frappe.get_doc(self.reference_doctype, self.reference_name)
		self.set_link_baseline(local_hash(doc, json.loads(self.remote_data)))
		self.close("ERPNext Kept")

	def check_open(self) -> None:
		self.check_permission("write")
		if self.status != "Open":
			frappe.throw(_("This conflict was already resolved: {0}").format(_(self.status)))

	def set_link_baseline(self, local_hash: str) -> None:
		frappe.db.set_value(
			"Sync Link",
			{
				"connector": self.connector,
				"reference_doctype": self.reference_doctype,
				"external_id": self.external_id,
			},
			"local_hash",
			local_hash,
		)

	def close(self, status: str) -> None:
		self.db_set({"status": status, "resolved_by": frappe.session.user})
