# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import json

import frappe
from frappe import _
from frappe.model import default_fields
from frappe.model.document import Document
from frappe.utils import now_datetime

from erp_connect.engine import mapping, outbound, transports
from erp_connect.engine.specs import MAPPED_FIELDS, InboundSpec, PushSpec
from erp_connect.engine.transports import OutboundEvent
from erp_connect.services.common.doctypes import sync_refusal
from erp_connect.services.common.templates import template_problem
from erp_connect.services.inbound import access
from erp_connect.services.push.followed import FOLLOWED, STOCK_EVENT
from erp_connect.services.push.outbox import DOC_EVENTS, clear_rules_cache, next_seq, render_payload

MASK = "********"


class FieldMapped:
	"""The field map and the reference doctype, shared by Sync Rule and Pull Rule."""

	def validate_reference_doctype(self):
		refused = sync_refusal(self.reference_doctype or "")
		if refused:
			frappe.throw(refused, title=_("Not Synced"))
		meta = frappe.get_meta(self.reference_doctype)
		if meta.istable or meta.issingle or meta.is_virtual:
			frappe.throw(_("{0} cannot be synced: pick a regular DocType").format(self.reference_doctype))

	def validate_connector_writes(self):
		"""Pulls and inbound rules write only what the connector's Allowed DocTypes allow: a rule
		that could write nothing is bad configuration, refused with what to add."""
		refused = access.write_refusal(frappe.get_doc("Connector", self.connector), self.reference_doctype)
		if refused:
			frappe.throw(refused, title=_("Not Allowed"))

	def normalize_child_table_paths(self):
		"""Accept items.item_code for a child table field and store it as items[].item_code."""
		tables = {df.fieldname for df in frappe.get_meta(self.reference_doctype).get_table_fields()}
		for row in self.field_map:
			head, _, rest = (row.erpnext_field or "").partition(".")
			if head in tables and rest:
				row.erpnext_field = f"{head}[].{rest}"

	def validate_field_map(self):
		if self.payload_mode != "Mapped Fields":
			return
		if not self.field_map:
			frappe.throw(_("Add at least one row to the Field Map, or send the Whole Document"))
		problems = []
		rules = self.field_rules() if self.direction == "Push" else self.inbound_field_rules()
		for row, rule in zip(self.field_map, rules, strict=True):
			problems += [_("Row {0}: {1}").format(row.idx, p) for p in mapping.rule_problems(rule)]
			if (
				rule.transform == mapping.TEMPLATE
				and rule.option
				and (problem := template_problem(rule.option))
			):
				problems.append(_("Row {0}: {1}").format(row.idx, problem))
			erpnext_field = rule.source if self.direction == "Push" else rule.target
			if erpnext_field and not self.has_field(erpnext_field):
				problems.append(
					_("Row {0}: {1} has no field {2}").format(row.idx, self.reference_doctype, erpnext_field)
				)
		if problems:
			frappe.throw("<br>".join(problems), title=_("Field Map"))

	def has_field(self, path: str) -> bool:
		head, _, rest = path.partition(".")
		meta = frappe.get_meta(self.reference_doctype)
		if any(self.get(f"event_{e}") and head in f.extra_fields for e, f in FOLLOWED.items()):
			return True  # what a followed change offers besides the document's own fields (stock_qty)
		if head.endswith("[]"):
			df = meta.get_field(head[:-2])
			if not df or df.fieldtype not in frappe.model.table_fields:
				return False
			meta, head = frappe.get_meta(df.options), rest.split(".")[0]
		return head in default_fields or head == "name" or bool(meta.get_field(head))

	def field_rules(self) -> list[mapping.FieldRule]:
		return [
			mapping.FieldRule(
				source=row.erpnext_field or "",
				target=row.external_path or "",
				transform=row.transform or mapping.NONE,
				option=row.transform_option,
				required=bool(row.required),
			)
			for row in self.field_map
		]

	def inbound_field_rules(self) -> list[mapping.FieldRule]:
		"""The field map read the other way: external path -> ERPNext field."""
		return [
			mapping.FieldRule(r.target, r.source, r.transform, r.option, r.required)
			for r in self.field_rules()
		]

	def inbound_spec(self, external_id_path: str | None, **settings) -> InboundSpec:
		"""How the upsert path reads this rule's records (the one place an InboundSpec is built)."""
		return InboundSpec(
			external_id_path=external_id_path or "id",
			field_rules=tuple(self.inbound_field_rules()),
			**settings,
		)


class SyncRule(FieldMapped, Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from erp_connect.erp_connect.doctype.sync_field_map.sync_field_map import SyncFieldMap

		backfill_copied: DF.Int
		backfill_cursor: DF.Data | None
		backfill_message: DF.SmallText | None
		backfill_status: DF.Literal["", "Queued", "Running", "Done", "Failed"]
		backfill_total: DF.Int
		batch_size: DF.Int
		condition: DF.Code | None
		connector: DF.Link
		direction: DF.Literal["Push", "Inbound"]
		disabled_reason: DF.SmallText | None
		enabled: DF.Check
		event_after_insert: DF.Check
		event_on_cancel: DF.Check
		event_on_submit: DF.Check
		event_on_trash: DF.Check
		event_on_update: DF.Check
		event_on_status_change: DF.Check
		event_on_stock_change: DF.Check
		event_on_update_after_submit: DF.Check
		external_id_path: DF.Data | None
		field_map: DF.Table[SyncFieldMap]
		http_method: DF.Literal["POST", "PUT", "PATCH"]
		payload_mode: DF.Literal["Mapped Fields", "Whole Document"]
		reference_doctype: DF.Link
		stock_warehouses: DF.SmallText | None
		target_path: DF.Data | None

	# end: auto-generated types
	def validate(self):
		self.validate_reference_doctype()
		if self.direction == "Push":
			self.validate_connector_receives()
			self.validate_events()
			self.validate_read_permission()
		else:
			self.validate_inbound()
			self.validate_connector_writes()
		self.validate_condition()
		self.validate_target()
		self.normalize_child_table_paths()
		self.validate_field_map()
		if self.enabled:
			self.disabled_reason = None

	def on_update(self):
		clear_rules_cache()
		from erp_connect.services.push.replica import start_backfill_on_first_sync

		start_backfill_on_first_sync(self)

	def on_trash(self):
		clear_rules_cache()

	def validate_connector_receives(self):
		"""POS terminals and mobile apps only call ERPNext: a push to them could never be sent."""
		connector_type = frappe.db.get_value("Connector", self.connector, "connector_type")
		if not transports.kind(connector_type).calls_out:
			frappe.throw(
				_(
					"{0} is a {1} connector: it calls ERPNext and is never called, so nothing can be "
					"pushed to it. It reads changes from the change feed instead; to send changes "
					"somewhere, add the rule to a connector of another type."
				).format(self.connector, _(connector_type)),
				title=_("Nothing to Push To"),
			)

	def validate_events(self):
		if not self.selected_events():
			frappe.throw(_("Pick at least one event (After Insert, On Update, ...)"))
		for event in FOLLOWED:
			if self.get(f"event_{event}") and self.reference_doctype != FOLLOWED[event].doctype:
				frappe.throw(
					_("{0} happens to a {1}: pick the DocType {1}").format(
						_(self.meta.get_label(f"event_{event}")), FOLLOWED[event].doctype
					)
				)
		if self.get(f"event_{STOCK_EVENT}"):
			unknown = [w for w in self.warehouses() if not frappe.db.exists("Warehouse", w)]
			if unknown:
				frappe.throw(_("No such warehouse: {0}").format(", ".join(unknown)))
		if not frappe.get_meta(self.reference_doctype).is_submittable:
			picked = [
				e for e in ("on_submit", "on_cancel", "on_update_after_submit") if self.get(f"event_{e}")
			]
			if picked:
				frappe.throw(
					_("{0} is not submittable, so {1} never happens").format(
						self.reference_doctype, ", ".join(picked)
					)
				)

	def validate_read_permission(self):
		"""A push rule sends whatever its doctype holds (the whole document, or anything a template
		reads) to wherever its connector points: only someone who may read that doctype sets one
		up."""
		user = frappe.session.user
		if not frappe.has_permission(self.reference_doctype, "read", user=user):
			frappe.throw(
				_("{0} may not read {1}, so may not send it to another system").format(
					user, self.reference_doctype
				),
				title=_("Not Permitted"),
			)

	def validate_inbound(self):
		problems = mapping.path_problems(self.external_id_path or "")
		if problems:
			frappe.throw(_("External ID Path {0}").format(problems[0]))
		duplicate = frappe.db.exists(
			"Sync Rule",
			{
				"connector": self.connector,
				"reference_doctype": self.reference_doctype,
				"direction": "Inbound",
				"enabled": 1,
				"name": ("!=", self.name),
			},
		)
		if duplicate and self.enabled:
			frappe.throw(
				_("{0} already has an inbound rule for {1}: {2}").format(
					self.connector, self.reference_doctype, duplicate
				)
			)

	def validate_condition(self):
		condition = (self.condition or "").strip()
		if not condition:
			return
		try:
			if condition.startswith(("[", "{")):
				json.loads(condition)
			else:
				compile(condition, "<condition>", "eval")
		except (ValueError, SyntaxError) as e:
			frappe.throw(_("Condition is not a valid expression or JSON filter: {0}").format(e))

	def validate_target(self):
		if (self.batch_size or 0) < 1:
			self.batch_size = 1
		if (self.target_path or "").startswith(("http://", "https://")):
			from erp_connect.engine.http import validate_url

			problem = validate_url(self.target_path)
			if problem:
				frappe.throw(_("Target Path is not valid: {0}").format(problem))

	# -- what the outbox and delivery use ---------------------------------------------------------
	def selected_events(self) -> list[str]:
		return [e for e in (*DOC_EVENTS, *FOLLOWED) if self.get(f"event_{e}")]

	def warehouses(self) -> tuple[str, ...]:
		return tuple(w.strip() for w in (self.stock_warehouses or "").splitlines() if w.strip())

	def push_spec(self) -> PushSpec:
		"""What the outbox, the drain, the feed and the preview read of this rule."""
		return PushSpec(
			name=self.name,
			connector=self.connector,
			doctype=self.reference_doctype,
			condition=self.condition,
			payload_mode=self.payload_mode,
			field_rules=tuple(self.field_rules()),
			doc_fields=self.document_fields(),
			dry_run=bool(frappe.db.get_value("Connector", self.connector, "dry_run")),
			target_path=self.target_path or "",
			http_method=self.http_method or "POST",
			batch_size=max(self.batch_size or 1, 1),
			warehouses=self.warehouses() if self.get(f"event_{STOCK_EVENT}") else (),
		)

	def document_fields(self) -> dict | None:
		"""The fields the field map reads: {field: None} or {table: {row fields}}; None when the
		rule needs the whole document (whole-document payloads, templates)."""
		rules = self.field_rules()
		if self.payload_mode != MAPPED_FIELDS or any(r.transform == mapping.TEMPLATE for r in rules):
			return None
		fields: dict = {}
		for rule in rules:
			head, _, rest = rule.source.partition(".")
			if not head:
				continue  # a constant
			if head.endswith("[]"):
				if fields.get(head[:-2], set()) is not None:
					fields.setdefault(head[:-2], set()).add(rest.split(".")[0])
			else:
				fields[head] = None
		return fields

	@frappe.whitelist()
	def preview(self, docname: str) -> dict:
		"""The exact request a document would produce now; nothing is sent or saved."""
		doc = frappe.get_doc(self.reference_doctype, docname)
		doc.check_permission("read")
		connector = frappe.get_doc("Connector", self.connector)
		event = (self.selected_events() or ["on_update"])[0]
		seq = next_seq(self.connector, doc.doctype, doc.name)
		ref = outbound.EventRef(
			outbound.new_event_id(), doc.doctype, doc.name, event, seq, now_datetime().isoformat()
		)
		try:
			body = render_payload(self.push_spec(), doc.as_dict(convert_dates_to_str=True), ref)
		except mapping.MappingError as e:
			return {"error": str(e), "problems": e.problems}
		try:
			published = connector.transport().message_preview(
				self.target_path, OutboundEvent("preview", ref.event_id, body)
			)
		except ValueError as e:  # a subject / topic template that cannot name the event
			return {"error": str(e), "problems": [str(e)]}
		if published:  # a broker: the message, not an HTTP request
			return {**published, "body": body, "dry_run": bool(connector.dry_run)}
		auth_headers = {k: MASK for k in connector.auth_headers()}  # never show a secret
		headers = outbound.request_headers(
			ref.event_id, body, connector.secret("signing_secret"), auth_headers
		)
		return {
			"method": self.http_method or "POST",
			"url": connector.url_for(self.target_path),
			"headers": headers,
			"body": body,  # the exact bytes that are signed and sent
			"dry_run": bool(connector.dry_run),
		}
