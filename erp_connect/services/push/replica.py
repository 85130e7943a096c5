"""What a PostgreSQL replica needs from Frappe: the layout of each mirrored doctype's table, read
from its meta (the engine's transport creates the tables and columns from it), and the backfill
that copies the documents that exist before the first event (resumable, its progress on the rule)."""

import time

import frappe
from frappe.model import no_value_fields

from erp_connect.engine import transports
from erp_connect.engine.transports.postgres_replica import DEFAULT_SCHEMA, Table, describe
from erp_connect.services.common import jobs
from erp_connect.services.common.locks import named_lock


def schema_of(connector) -> str:
	return connector.get("replica_schema") or DEFAULT_SCHEMA


def table_of(schema: str, doctype: str) -> Table:
	"""The table of ``doctype`` in ``schema``: its value fields typed, its child tables as tables
	(a doctype that is gone: the standard columns, the rest read off the data)."""
	if not frappe.db.exists("DocType", doctype):
		return describe(schema, doctype, [])
	meta = frappe.get_meta(doctype)
	children = {
		df.fieldname: (df.options, _value_fields(df.options))
		for df in meta.get_table_fields()
		if df.options and df.fieldtype == "Table"
	}
	return describe(schema, doctype, _value_fields(doctype), children)


def _value_fields(doctype: str) -> list[tuple[str, str]]:
	return [
		(df.fieldname, df.fieldtype)
		for df in frappe.get_meta(doctype).fields
		if df.fieldtype not in no_value_fields
	]


# -- backfill: what the documents are before the first event --------------------------------------
BACKFILL = "erp_connect.services.push.replica.backfill"
BACKFILL_CHUNK = 1000  # documents per COPY and per committed step of the cursor
MAX_BACKFILL_SECONDS = 240  # then hand over to a fresh job
BACKFILL_JOB_TIMEOUT = 900


def mirrors_tables(connector: str) -> bool:
	return transports.kind(frappe.db.get_value("Connector", connector, "connector_type")).mirrors_tables


def start_backfill_on_first_sync(rule) -> None:
	"""A push rule of a replica copies its doctype's documents once, the first time it is enabled
	(Sync Rule.on_update); events written meanwhile are kept (an older copy never wins)."""
	if (
		rule.direction != "Push"
		or not rule.enabled
		or rule.backfill_status
		or not mirrors_tables(rule.connector)
	):
		return
	rule.db_set(
		{"backfill_status": "Queued", "backfill_copied": 0, "backfill_cursor": None}, update_modified=False
	)
	enqueue_backfill(rule.name)


def enqueue_backfill(rule: str) -> None:
	frappe.enqueue(
		BACKFILL,
		queue="long",
		timeout=BACKFILL_JOB_TIMEOUT,
		job_id=f"erp_connect:backfill:{rule}",
		deduplicate=True,
		enqueue_after_commit=True,
		rule=rule,
	)


def sweep() -> None:
	"""Every minute: a backfill that is not Done or Failed goes on (its job died, or was never
	taken); a second job of a rule finds the first one's lock taken and returns at once."""
	for rule in frappe.get_all(
		"Sync Rule", {"enabled": 1, "backfill_status": ("in", ("Queued", "Running"))}, pluck="name"
	):
		jobs.enqueue_sweep(BACKFILL, "backfill", rule, queue="long", timeout=BACKFILL_JOB_TIMEOUT, rule=rule)


def backfill(
	rule: str, max_seconds: float = MAX_BACKFILL_SECONDS, chunk: int = BACKFILL_CHUNK, echo=None
) -> dict:
	"""Copy the rule's documents after its cursor into the replica, a chunk at a time, committing
	the cursor after each: a backfill that stops (a deadline, a failure, a dead worker) resumes where
	it was. One backfill of a rule at a time. Returns the rule's progress."""
	if not frappe.db.exists("Sync Rule", rule):
		return {}  # deleted since the job was queued
	doc = frappe.get_doc("Sync Rule", rule)
	connector = frappe.get_doc("Connector", doc.connector)
	if not transports.kind(connector.connector_type).mirrors_tables:
		return {}
	with named_lock("backfill", rule, 0) as taken:
		if not taken:
			return progress(rule)  # another worker is at it
		table = table_of(schema_of(connector), doc.reference_doctype)
		transport = connector.transport()
		deadline = time.monotonic() + max_seconds
		cursor, copied = doc.backfill_cursor or "", doc.backfill_copied or 0
		_set(
			rule,
			backfill_status="Running",
			backfill_total=frappe.db.count(doc.reference_doctype),
			backfill_message=None,
		)
		try:
			while True:
				documents = read_chunk(table, cursor, chunk)
				if not documents:
					_set(rule, backfill_status="Done", backfill_message=None)
					break
				transport.backfill(table, documents)
				cursor, copied = documents[-1]["name"], copied + len(documents)
				_set(rule, backfill_cursor=cursor, backfill_copied=copied)
				if echo:
					echo(progress(rule))
				if time.monotonic() > deadline:
					enqueue_backfill(rule)  # the rest in a fresh job
					frappe.db.commit()
					break
		except Exception as e:
			frappe.db.rollback()
			_set(rule, backfill_status="Failed", backfill_message=f"{type(e).__name__}: {e}"[:1000])
			frappe.log_error(f"Replica backfill of {rule} failed")
		finally:
			transport.close()
	return progress(rule)


def progress(rule: str) -> dict:
	return frappe.db.get_value(
		"Sync Rule",
		rule,
		[f"backfill_{f} as {f}" for f in ("status", "copied", "total", "cursor", "message")],
		as_dict=True,
	)


def _set(rule: str, **values) -> None:
	frappe.db.set_value("Sync Rule", rule, values, update_modified=False)
	frappe.db.commit()


def read_chunk(table: Table, after: str, limit: int) -> list[dict]:
	"""The next documents by name after ``after``, with their child rows, as the replica takes them."""
	documents = frappe.get_all(
		table.doctype,
		fields=["*"],
		filters=[["name", ">", after]],
		order_by="name asc",
		limit_page_length=limit,
	)
	names = [d.name for d in documents]
	for fieldname, child in table.children.items():
		rows_by_parent: dict[str, list] = {}
		if names:
			for row in frappe.get_all(
				child.doctype,
				fields=["*"],
				filters={"parent": ("in", names), "parenttype": table.doctype, "parentfield": fieldname},
				order_by="idx asc",
			):
				rows_by_parent.setdefault(row.parent, []).append(row)
		for d in documents:
			d[fieldname] = rows_by_parent.get(d.name, [])
	return documents


def rebuild(connector: str, doctype: str, resume: bool = False, echo=None) -> list[dict]:
	"""Drop a doctype's table in the replica and copy every document again (``resume``: go on from
	where the last backfill stopped instead). Runs here, not on a worker; returns each rule's progress."""
	rules = frappe.get_all(
		"Sync Rule", {"connector": connector, "reference_doctype": doctype, "direction": "Push"}, pluck="name"
	)
	results = []
	for rule in rules:
		if not resume:
			doc = frappe.get_doc("Connector", connector)
			transport = doc.transport()
			try:
				transport.drop_table(table_of(schema_of(doc), doctype))
			finally:
				transport.close()
			_set(
				rule, backfill_status="Queued", backfill_copied=0, backfill_cursor=None, backfill_message=None
			)
		results.append(backfill(rule, max_seconds=float("inf"), echo=echo))
	return results
