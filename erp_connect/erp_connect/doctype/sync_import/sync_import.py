# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

from frappe.model.document import Document


class SyncImport(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		action: DF.Data | None
		cancelled_count: DF.Int
		connector: DF.Link
		created_count: DF.Int
		error: DF.SmallText | None
		error_count: DF.Int
		finished_at: DF.Datetime | None
		processed: DF.Int
		records_file: DF.Attach | None
		reference_doctype: DF.Link
		results_file: DF.Attach | None
		started_at: DF.Datetime | None
		status: DF.Literal["Queued", "Running", "Done", "Failed"]
		total: DF.Int
		unchanged_count: DF.Int
		updated_count: DF.Int
	# end: auto-generated types
