# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

from frappe.model.document import Document


class SyncRun(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from erp_connect.erp_connect.doctype.sync_run_error.sync_run_error import SyncRunError

		conflicts: DF.Int
		connector: DF.Link | None
		created: DF.Int
		errors: DF.Table[SyncRunError]
		failed: DF.Int
		finished_at: DF.Datetime | None
		full_resync: DF.Check
		message: DF.SmallText | None
		pages: DF.Int
		pull_rule: DF.Link
		reference_doctype: DF.Link | None
		resumed: DF.Check
		since: DF.Data | None
		started_at: DF.Datetime | None
		status: DF.Literal["Running", "Succeeded", "Completed with Errors", "Failed", "Interrupted"]
		unchanged: DF.Int
		updated: DF.Int
	# end: auto-generated types
