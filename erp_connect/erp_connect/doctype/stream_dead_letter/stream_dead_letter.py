# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class StreamDeadLetter(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempts: DF.Int
		body: DF.Code | None
		connector: DF.Link
		error: DF.SmallText | None
		message_id: DF.Data | None
		pull_rule: DF.Link
		replayed_at: DF.Datetime | None
		status: DF.Literal["Dead", "Replayed"]
		subject: DF.Data | None
		sync_run: DF.Link | None

	# end: auto-generated types
	@frappe.whitelist()
	def retry(self) -> str:
		"""Write this message's records again through the pull rule's upsert (Desk button)."""
		from erp_connect.services.pull import dead_letters

		self.check_permission("write")
		return dead_letters.replay(self.name)
