# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class SyncLink(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		connector: DF.Link
		content_hash: DF.Data | None
		correlation_id: DF.Data | None
		external_id: DF.Data
		last_synced_at: DF.Datetime | None
		local_hash: DF.Data | None
		reference_doctype: DF.Link
		reference_name: DF.DynamicLink
	# end: auto-generated types


# External ids match exactly. The site's collation folds case, accents and trailing spaces ("ABC",
# "abc " and "abc" would be one id), which would link one record of another system to the
# document of a different one.
EXTERNAL_ID_COLLATION = "utf8mb4_nopad_bin"


def on_doctype_update():
	column = frappe.db.sql(
		"""select collation_name, column_type, is_nullable from information_schema.columns
		where table_schema = database() and table_name = 'tabSync Link' and column_name = 'external_id'""",
		as_dict=True,
	)
	if column and column[0].collation_name != EXTERNAL_ID_COLLATION:
		null = " not null" if column[0].is_nullable == "NO" else ""
		frappe.db.sql_ddl(
			f"alter table `tabSync Link` modify `external_id` {column[0].column_type}"
			f" collate {EXTERNAL_ID_COLLATION}{null}"
		)
	# one document per external record and connector, found both ways
	frappe.db.add_unique("Sync Link", ["connector", "reference_doctype", "external_id"], "external_record")
	frappe.db.add_index("Sync Link", ["reference_doctype", "reference_name"], "local_document")
