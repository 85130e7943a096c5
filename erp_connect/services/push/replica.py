"""What a PostgreSQL replica needs from Frappe: the layout of each mirrored doctype's table, read
from its meta (the engine's transport creates the tables and columns from it), and the backfill
that copies the documents that exist before the first event (resumable, its progress on the rule)."""

import time
from concurrent.futures import ThreadPoolExecutor

import frappe
from frappe.model import no_value_fields

from erp_connect.engine import transports
from erp_connect.engine.transports.postgres_replica import (
	DEFAULT_SCHEMA,
	FLAG_TYPES,
	CopyChunk,
	CopyLines,
	NotCopyable,
	Table,
	describe,
)
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
BACKFILL_CHUNK = 10000  # documents per COPY and per committed step of the cursor
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
			if copy_chunks(rule, table, transport, cursor, copied, chunk, deadline, echo):
				_set(rule, backfill_status="Done", backfill_message=None)
			else:
				enqueue_backfill(rule)  # the rest in a fresh job
				frappe.db.commit()
		except Exception as e:
			frappe.db.rollback()
			_set(rule, backfill_status="Failed", backfill_message=f"{type(e).__name__}: {e}"[:1000])
			frappe.log_error(f"Replica backfill of {rule} failed")
		finally:
			transport.close()
	return progress(rule)


def copy_chunks(
	rule: str, table: Table, transport, cursor: str, copied: int, chunk: int, deadline, echo
) -> bool:
	"""Copy chunk after chunk, committing the cursor after each; PostgreSQL writes one chunk while
	MariaDB reads the next (a thread of its own: the transport is thread-safe, frappe.db stays
	here). Returns whether everything is copied (False: the deadline came first)."""
	joined_limit = _joined_value_limit()
	with ThreadPoolExecutor(1, thread_name_prefix="erp_connect-backfill") as writer:
		ahead = read_lines(table, cursor, chunk, joined_limit)
		while ahead.count:
			writing, last, count = writer.submit(transport.backfill_lines, ahead), ahead.last, ahead.count
			ahead = read_lines(table, last, chunk, joined_limit) if time.monotonic() < deadline else None
			try:
				writing.result()
			except NotCopyable:  # a value PostgreSQL does not take as MariaDB wrote it
				transport.backfill(table, read_chunk(table, cursor, chunk, up_to=last))
			cursor, copied = last, copied + count
			_set(rule, backfill_cursor=cursor, backfill_copied=copied)
			if echo:
				echo(progress(rule))
			if ahead is None:
				return False
	return True


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


# COPY's CSV format, written by MariaDB itself: text quoted with its quotes doubled (tabs and new
# lines may stand inside quotes), other values as MariaDB prints them, NULL as nothing at all.
# Literal quotes, not CHAR(34): a function call per value costs a tenth of the read.
_FLAG_SQL = {"_deleted": "'f'", "_cancelled": "if(`docstatus` = 2, 't', 'f')", "_event_id": "''"}


def _copy_value(column: str, pg_type: str) -> str:
	"""The SQL that writes one column's value for COPY CSV (text quoted; numbers, dates and
	booleans as MariaDB prints them: 1.500000000, 2026-12-01 10:00:00.000000, 0/1)."""
	if pg_type in ("text", "jsonb"):
		return f"""ifnull(concat('"', replace(`{column}`, '"', '""'), '"'), '')"""
	return f"ifnull(`{column}`, '')"


def _copyable(table: Table) -> list[str]:
	"""The table's columns that the doctype's database table has (a field not migrated yet is not)."""
	present = set(frappe.db.get_table_columns(table.doctype))
	return [c for c in table.columns if c in present]


def read_lines(table: Table, after: str, limit: int, joined_limit: int) -> CopyChunk:
	"""The next documents by name after ``after`` (and their child rows) as COPY CSV lines that
	MariaDB formatted: nothing is converted value by value in Python. The documents' lines come
	joined into one value (handing over rows one by one costs more than formatting them); a chunk
	too large for that one value (``joined_limit`` bytes, _joined_value_limit) is read row by row."""
	columns = _copyable(table)
	line = "concat_ws(',', " + ", ".join(
		[_copy_value(c, table.columns[c]) for c in columns] + [_FLAG_SQL[f] for f in FLAG_TYPES]
	)
	documents = (
		f"select `name`, {line}) as l from `tab{table.doctype}` where `name` > %s order by `name` limit %s"
	)
	count, last, lines = frappe.db.sql(
		f"select count(*), max(`name`), cast(group_concat(l separator '\\n') as binary) from ({documents}) t",
		(after, limit),
	)[0]
	if count and (lines is None or len(lines) >= joined_limit):  # cut at the limit: row by row
		rows = frappe.db.sql(documents, (after, limit))
		lines = "\n".join(text for _, text in rows).encode()
	children = []
	for parentfield, child in table.children.items():
		child_columns = _copyable(child)
		child_line = "concat_ws(',', " + ", ".join(_copy_value(c, child.columns[c]) for c in child_columns)
		# the chunk's parents: the names after ``after`` up to its last, in this database's order
		child_rows = (
			frappe.db.sql(
				f"select `parent`, {child_line}) from `tab{child.doctype}` where `parenttype` = %s"
				" and `parentfield` = %s and `parent` > %s and `parent` <= %s order by `parent`, `idx`",
				(table.doctype, parentfield, after, last),
			)
			if count
			else []
		)
		children.append(
			CopyLines(child, parentfield, child_columns, [(p, t.encode()) for p, t in child_rows])
		)
	return CopyChunk(table, [*columns, *FLAG_TYPES], count, last or "", lines or b"", children)


def _joined_value_limit() -> int:
	"""Let GROUP_CONCAT join as much as a packet to this client holds (its default is 1 KB), for
	the rest of this connection's session; returns that limit."""
	limit = int(frappe.db.sql("select @@max_allowed_packet")[0][0])
	frappe.db.sql("set session group_concat_max_len = %s", limit)
	return limit


def read_chunk(table: Table, after: str, limit: int, up_to: str | None = None) -> list[dict]:
	"""The next documents by name after ``after`` (up to ``up_to``), with their child rows, as the
	replica takes them."""
	documents = frappe.get_all(
		table.doctype,
		fields=["*"],
		filters=[["name", ">", after], *([["name", "<=", up_to]] if up_to else [])],
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
