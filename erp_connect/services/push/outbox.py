"""The outbox: doc_events write one Sync Event per matching push rule in the document's own
transaction, with the payload rendered as the document is now.

Nothing here talks to the network. A rollback of the save removes its events with it; after the
commit, the connector's drain is woken (wake.py; a sweeper catches anything a wake-up missed).
"""

import datetime
import json

import frappe
from frappe.utils import now_datetime
from frappe.utils.data import evaluate_filters

from erp_connect.engine import mapping, outbound
from erp_connect.engine.specs import WHOLE_DOCUMENT, PushSpec
from erp_connect.services.common import correlation, sql
from erp_connect.services.common.status import DEAD, DRY_RUN, PENDING
from erp_connect.services.common.templates import render_template
from erp_connect.services.inbound.links import external_id_of
from erp_connect.services.push.wake import wake_after_commit

DOC_EVENTS = ("after_insert", "on_update", "on_submit", "on_cancel", "on_trash", "on_update_after_submit")
RULES_CACHE_KEY = "erp_connect:push_rules"


def on_doc_event(doc, method: str) -> None:
	"""doc_events handler for every doctype: cheap when no rule matches (one cached lookup).

	The events of one save (after_insert, on_update, on_submit, ...) are collected on the document
	and written by one INSERT in on_change, which Frappe runs last in every save, submit and cancel,
	still inside the same transaction. A save that fails before on_change writes nothing.
	"""
	if (
		frappe.flags.in_install
		or frappe.flags.in_uninstall
		or frappe.flags.in_migrate
		or frappe.flags.in_patch
	):
		return
	if method == "on_change":
		insert_rows(doc.flags.pop("erp_connect_rows", None) or [])
		return
	rules = push_rules().get(f"{doc.doctype}:{method}")
	if not rules:
		return
	rows = event_rows(doc, method, rules)
	if method == "on_trash":  # a deletion has no on_change
		insert_rows(rows)
	else:
		doc.flags.setdefault("erp_connect_rows", []).extend(rows)


def push_rules() -> dict[str, list[PushSpec]]:
	"""Enabled push rules of enabled connectors, keyed "DocType:event"; cached until a rule or connector changes."""
	return frappe.cache.get_value(RULES_CACHE_KEY, generator=_load_push_rules)


def clear_rules_cache() -> None:
	"""Forget the cached rules now, and again when this transaction ends: a process that reloads
	them in between may have seen the old (or the uncommitted) state."""
	_forget_rules()
	frappe.db.after_commit.add(_forget_rules)
	frappe.db.after_rollback.add(_forget_rules)


def _forget_rules() -> None:
	frappe.cache.delete_value(RULES_CACHE_KEY)


def _load_push_rules() -> dict[str, list[PushSpec]]:
	by_key: dict[str, list[PushSpec]] = {}
	connectors = frappe.get_all("Connector", {"enabled": 1}, pluck="name")
	for name in frappe.get_all(
		"Sync Rule",
		{"enabled": 1, "direction": "Push", "connector": ("in", connectors or [""])},
		pluck="name",
	):
		rule = frappe.get_doc("Sync Rule", name)
		spec = rule.push_spec()
		for event in rule.selected_events():
			by_key.setdefault(f"{rule.reference_doctype}:{event}", []).append(spec)
	return by_key


def event_rows(doc, method: str, rules: list[PushSpec]) -> list[dict]:
	doc_dict = document_view(doc, _merge_fields(rule.doc_fields for rule in rules))
	now = now_datetime()
	rows = []
	for rule in rules:
		if doc.flags.get("erp_connect_origin") == rule.connector:
			continue  # the change came from this connector: never echo it back
		try:
			if not condition_passes(rule.condition, doc, doc_dict):
				continue
			error = None
		except Exception as e:  # a broken condition must not block the user's save
			error = f"Condition failed: {e}"
		rows.append(event_row(rule, doc, doc_dict, method, error, now))
	return rows


def condition_passes(condition: str | None, doc, doc_dict: dict) -> bool:
	if not condition or not condition.strip():
		return True
	if condition.lstrip().startswith(("[", "{")):
		return evaluate_filters(doc, json.loads(condition))
	return bool(frappe.safe_eval(condition, None, {"doc": doc}))


def document_view(doc, fields) -> dict:
	"""The document as the rules see it, dates as text. ``fields`` names the fields the rules map
	(a set of row fields for a child table walked with []); None means the whole document. Copying
	only what is mapped keeps the save fast; the whole document costs a full as_dict()."""
	if fields is None:
		return doc.as_dict(convert_dates_to_str=True)
	view = {}
	for name, row_fields in fields.items():
		value = doc.get(name)
		if isinstance(value, list):  # a child table
			if row_fields is None:
				value = [row.as_dict(convert_dates_to_str=True) for row in value]
			else:
				value = [{f: _date_as_text(row.get(f)) for f in row_fields} for row in value]
		view[name] = _date_as_text(value)
	return view


def _date_as_text(value):
	if isinstance(value, datetime.datetime | datetime.date | datetime.time | datetime.timedelta):
		return str(value)  # as as_dict(convert_dates_to_str=True) does
	return value


def _merge_fields(all_fields) -> dict | None:
	"""The fields several rules read: their union, where a whole value (None) wins over row fields."""
	merged: dict = {}
	for fields in all_fields:
		if fields is None:
			return None
		for name, row_fields in fields.items():
			if row_fields is None or merged.get(name, set()) is None:
				merged[name] = None
			else:
				merged[name] = merged.get(name, set()) | row_fields
	return merged


def insert_event(rule: PushSpec, doc, method: str) -> str:
	"""Write one event now, rendered from the whole document as it is; returns its event id."""
	row = event_row(rule, doc, doc.as_dict(convert_dates_to_str=True), method, None, now_datetime())
	insert_rows([row])
	return row["event_id"]


def event_row(rule: PushSpec, doc, doc_dict: dict, method: str, error: str | None, now) -> dict:
	"""Render the payload now (what the document looked like at save time) into an outbox row."""
	seq = next_seq(rule.connector, doc.doctype, doc.name, new_document=method == "after_insert")
	ref = outbound.EventRef(outbound.new_event_id(), doc.doctype, doc.name, method, seq, now.isoformat())
	payload = None
	if not error:
		try:
			payload = render_payload(rule, doc_dict, ref)
		except mapping.MappingError as e:
			error = f"Mapping failed: {e}"
	user = frappe.session.user
	return {
		"name": ref.event_id,  # time-ordered and unique by construction: no sequence to take
		"creation": now,
		"modified": now,
		"owner": user,
		"modified_by": user,
		"event_id": ref.event_id,
		"status": DEAD if error else (DRY_RUN if rule.dry_run else PENDING),
		"connector": rule.connector,
		"sync_rule": rule.name,
		"reference_doctype": doc.doctype,
		"reference_name": doc.name,
		"doc_event": method,
		"seq": seq,
		"attempts": 0,
		"next_attempt_at": now,
		"payload": payload,
		"last_error": error,
		"correlation_id": correlation.current(),
	}


EVENT_COLUMNS = (
	"name",
	"creation",
	"modified",
	"owner",
	"modified_by",
	"event_id",
	"status",
	"connector",
	"sync_rule",
	"reference_doctype",
	"reference_name",
	"doc_event",
	"seq",
	"attempts",
	"next_attempt_at",
	"payload",
	"last_error",
	"correlation_id",
)


def insert_rows(rows: list[dict]) -> None:
	"""Several events in one INSERT; then remember to wake their connectors."""
	sql.insert_rows("Sync Event", EVENT_COLUMNS, [[row[c] for c in EVENT_COLUMNS] for row in rows])
	for row in rows:
		if row["status"] == PENDING:
			wake_after_commit(row["connector"])


def render_payload(rule: PushSpec, doc_dict: dict, ref: outbound.EventRef) -> str:
	"""An event's JSON body: the rule's rendering of the document inside the envelope. Raises
	MappingError when the field map cannot be applied."""
	return outbound.envelope(ref, render_data(rule, doc_dict))


def render_data(rule: PushSpec, doc_dict: dict):
	if rule.payload_mode == WHOLE_DOCUMENT:
		return doc_dict
	return mapping.map_record(
		doc_dict,
		rule.field_rules,
		mapping.OUTBOUND,
		render_template,
		lambda doctype, name: external_id_of(rule.connector, doctype, name),
	)


def next_seq(connector: str, doctype: str, name: str, new_document: bool = False) -> int:
	"""The next per-document sequence number. Remembered for the rest of the transaction, so the
	after_insert and on_update of one save cost no query; a new document starts at 1."""
	memo = _transaction_memo("erp_connect_seq")
	key = (connector, doctype, name)
	if key not in memo:
		if new_document:
			memo[key] = 0
		else:
			memo[key] = (
				frappe.db.sql(
					"""select max(seq) from `tabSync Event`
					where reference_doctype=%s and reference_name=%s and connector=%s""",
					(doctype, name, connector),
				)[0][0]
				or 0
			)
	memo[key] += 1
	return memo[key]


def forget_sequence_numbers() -> None:
	"""After a rollback to a savepoint: the remembered numbers may count events that are gone."""
	_transaction_memo("erp_connect_seq").clear()


def _transaction_memo(attribute: str) -> dict:
	"""A dict kept on frappe.local for the current transaction only (emptied on commit or rollback)."""
	memo = getattr(frappe.local, attribute, None)
	if memo is None:
		memo = {}
		setattr(frappe.local, attribute, memo)
	if not memo:
		frappe.db.after_commit.add(memo.clear)
		frappe.db.after_rollback.add(memo.clear)
	return memo
