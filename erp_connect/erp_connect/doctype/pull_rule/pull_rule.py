# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from erp_connect.engine import mapping, pagination, transports
from erp_connect.engine.specs import InboundSpec
from erp_connect.erp_connect.doctype.sync_rule.sync_rule import FieldMapped


class PullRule(FieldMapped, Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from erp_connect.erp_connect.doctype.sync_field_map.sync_field_map import SyncFieldMap

		auth_failures: DF.Int
		conflict_policy: DF.Literal["Park for Review", "ERPNext Wins", "Remote Wins"]
		connector: DF.Link
		cron: DF.Data | None
		cursor_param: DF.Data | None
		enabled: DF.Check
		field_map: DF.Table[SyncFieldMap]
		id_field: DF.Data
		interval_minutes: DF.Int
		last_run: DF.Link | None
		list_path: DF.Data | None
		modified_field: DF.Data | None
		next_path: DF.Data | None
		next_run_at: DF.Datetime | None
		offset_param: DF.Data | None
		overlap_seconds: DF.Int
		page_param: DF.Data | None
		page_size: DF.Int
		pagination_style: DF.Literal[
			"Page Number",
			"Offset",
			"Cursor Token",
			"Next Link",
			"Link Header",
			"Frappe Site",
			"Stream Consumer",
		]
		paused: DF.Check
		paused_reason: DF.SmallText | None
		records_path: DF.Data | None
		reference_doctype: DF.Link
		resume_state: DF.Code | None
		since_format: DF.Literal["ISO 8601", "Unix Seconds"]
		since_param: DF.Data | None
		size_param: DF.Data | None
		watermark: DF.Datetime | None
	# end: auto-generated types
	direction = "Inbound"  # the field map reads external path -> ERPNext field

	@property
	def payload_mode(self) -> str:
		return "Mapped Fields" if self.field_map else "Whole Document"

	def validate(self):
		self.validate_reference_doctype()
		self.validate_connector_writes()
		self.apply_connector_defaults()
		self.validate_list()
		self.validate_schedule()
		self.normalize_child_table_paths()
		self.validate_field_map()
		if not self.enabled or self.paused:
			self.next_run_at = None
		elif (
			not self.next_run_at
			or self.has_value_changed("interval_minutes")
			or self.has_value_changed("cron")
		):
			from erp_connect.services.pull.runs import next_run_after

			self.next_run_at = next_run_after(self, frappe.utils.now_datetime())

	def apply_connector_defaults(self):
		"""What the connector's kind fixes (another ERPNext site: its standard REST list,
		keyset-paged on (modified, name)); a List Path already set is kept."""
		kind = transports.kind(frappe.db.get_value("Connector", self.connector, "connector_type"))
		defaults = kind.pull_defaults(self.reference_doctype)
		if self.list_path:
			defaults.pop("list_path", None)
		self.update(defaults)

	def validate_list(self):
		if not (self.list_path or "").strip():
			frappe.throw(_("List Path is required: the remote endpoint that lists the records"))
		problems = self.list_spec().problems()
		for field in ("id_field", "records_path", "next_path", "modified_field"):
			if self.get(field):
				problems += [
					f"{self.meta.get_label(field)} {p}" for p in mapping.path_problems(self.get(field))
				]
		if (self.overlap_seconds or 0) < 0:
			problems.append(_("Overlap cannot be negative"))
		if problems:
			frappe.throw("<br>".join(problems), title=_("Remote List"))

	def validate_schedule(self):
		if self.cron:
			from croniter import croniter

			if not croniter.is_valid(self.cron):
				frappe.throw(_("Cron {0} is not a valid cron expression").format(self.cron))
		elif (self.interval_minutes or 0) < 1:
			frappe.throw(_("Run at least every 1 minute, or give a cron expression"))

	def list_spec(self) -> pagination.ListSpec:
		return pagination.ListSpec(
			style=self.pagination_style,
			page_size=self.page_size or 0,
			since_param=(self.since_param or "").strip(),
			since_format=self.since_format or pagination.ISO,
			records_path=(self.records_path or "").strip(),
			next_path=(self.next_path or "").strip(),
			page_param=self.page_param or "page",
			size_param=self.size_param or "per_page",
			offset_param=self.offset_param or "offset",
			cursor_param=self.cursor_param or "cursor",
			id_field=self.id_field or "id",
			modified_field=self.modified_field or "",
			extra_query={**self.frappe_fields(), **self.kind().list_query(self.inbound_field_rules())},
		)

	def kind(self):
		return transports.kind(frappe.db.get_value("Connector", self.connector, "connector_type"))

	def frappe_fields(self) -> dict:
		"""For a Frappe site, ask only for the fields the map reads (all of them without a map)."""
		if self.pagination_style != pagination.FRAPPE:
			return {}
		fields = {"name", "modified"} | {
			r.source.split(".")[0] for r in self.inbound_field_rules() if r.source
		}
		return {"fields": frappe.as_json(sorted(fields) if self.field_map else ["*"], indent=None)}

	def upsert_spec(self) -> InboundSpec:
		return self.inbound_spec(
			self.id_field,
			pull_rule=self.name,
			conflict_policy=self.conflict_policy,
			match_by_name=self.pagination_style == pagination.FRAPPE,  # sites share document names
		)

	# -- Desk actions ------------------------------------------------------------------------------
	@frappe.whitelist()
	def run_now(self, full_resync: bool = False) -> str:
		"""Queue a run at once (a full resync reads everything again, duplicates nothing)."""
		self.check_permission("write")
		from erp_connect.services.pull.runs import enqueue_run

		return enqueue_run(self.name, full_resync=bool(frappe.utils.cint(full_resync)), manual=True)

	@frappe.whitelist()
	def resume(self) -> None:
		"""Clear a pause (after fixing the credentials) and run."""
		self.check_permission("write")
		self.paused, self.paused_reason, self.auth_failures = 0, None, 0
		self.next_run_at = None
		self.save()
		self.run_now()
