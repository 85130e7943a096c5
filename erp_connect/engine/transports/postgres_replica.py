"""A PostgreSQL analytics replica: every outbox event becomes one row UPSERT in a table of its
doctype, so dashboards read ERPNext's documents live from a database of their own.

The layout of a doctype's table (``Table``: its columns with PostgreSQL types, its child tables)
comes from the DocType's meta, which the services side turns into a ``Table`` on the rule's
``Route``; without one, the layout is read off the data. Tables are created when missing and a new
field becomes a new column (``ADD COLUMN IF NOT EXISTS``), in a short transaction of their own
before the rows are written.

A batch is one transaction: each event is one upsert (and the replacement of its child rows)
under a savepoint, so a row PostgreSQL refuses (a value that is not a number) dead-letters that
event alone, and the commit is the acknowledgement of the others. An older version of a document
never overwrites a newer one (``where excluded.modified >= t.modified``; of two versions with the
same ``modified`` the deletion wins), so replaying every event converges to the same tables.
"""

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import sql

from erp_connect.engine import http
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import base

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "erpnext"
DEFAULT_BATCH = 100  # events per transaction when the rule sends each event alone
URL_PARAMETERS = frozenset({"sslmode", "connect_timeout", "application_name"})  # never host=, service=
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# DocType field types → PostgreSQL; what is not listed (Phone, Attach, Dynamic Link, ...) is text
FIELD_TYPES = {
	"Int": "bigint",
	"Check": "boolean",
	"Currency": "numeric",
	"Float": "numeric",
	"Percent": "numeric",
	"Rating": "numeric",
	"Duration": "numeric",
	"Date": "date",
	"Datetime": "timestamp",
	"Time": "time",
	"JSON": "jsonb",
	"Geolocation": "jsonb",
}
SKIPPED_TYPES = frozenset({"Password"})  # never mirrored (a secret's placeholder at best)
COLUMN_TYPES = frozenset({"text", "bigint", "boolean", "numeric", "date", "timestamp", "time", "jsonb"})

STANDARD = {
	"name": "text",
	"owner": "text",
	"creation": "timestamp",
	"modified": "timestamp",
	"modified_by": "text",
	"docstatus": "bigint",
	"idx": "bigint",
}
CHILD_STANDARD = {**STANDARD, "parent": "text", "parentfield": "text", "parenttype": "text"}
# what every document table has besides its fields; Frappe's own underscore fields are not mirrored
FLAGS = ("_deleted", "_cancelled", "_event_id", "_replicated_at")


# -- the layout ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
	"""Where one doctype's documents go, and the types of their columns."""

	schema: str
	name: str
	doctype: str
	columns: Mapping[str, str] = field(default_factory=dict)  # fieldname → PostgreSQL type
	children: Mapping[str, "Table"] = field(default_factory=dict)  # table fieldname → child rows
	child: bool = False
	skipped: frozenset[str] = frozenset()  # fields never mirrored (passwords)


def table_name(doctype: str) -> str:
	"""``Sales Invoice Item`` → ``sales_invoice_item``."""
	return (re.sub(r"[^a-z0-9]+", "_", doctype.lower()).strip("_") or "doctype")[:63]


def column_type(fieldtype: str) -> str | None:
	"""The PostgreSQL type of a DocType field, None for fields that are not mirrored."""
	return None if fieldtype in SKIPPED_TYPES else FIELD_TYPES.get(fieldtype, "text")


def describe(
	schema: str,
	doctype: str,
	fields: Sequence[tuple[str, str]],
	children: Mapping[str, tuple[str, Sequence[tuple[str, str]]]] | None = None,
	child: bool = False,
) -> Table:
	"""A doctype's table from its meta: (fieldname, fieldtype) pairs of its value fields, and for
	each table field (fieldname → (child doctype, its fields))."""
	columns = dict(CHILD_STANDARD if child else STANDARD)
	for fieldname, fieldtype in fields:
		pg_type = column_type(fieldtype)
		if pg_type and IDENTIFIER.match(fieldname) and fieldname not in columns:
			columns[fieldname] = pg_type
	return Table(
		schema,
		table_name(doctype),
		doctype,
		columns,
		{
			parentfield: describe(schema, child_doctype, child_fields, child=True)
			for parentfield, (child_doctype, child_fields) in (children or {}).items()
		},
		child,
		frozenset(fieldname for fieldname, fieldtype in fields if not column_type(fieldtype)),
	)


def inferred_type(value) -> str:
	"""The column type of a field the layout does not know, from its value."""
	if isinstance(value, bool):
		return "boolean"
	if isinstance(value, int | float):
		return "numeric"
	if isinstance(value, dict | list):
		return "jsonb"
	return "text"


def schema_problem(schema: str) -> str:
	if not IDENTIFIER.match(schema or ""):
		return "a schema name is lower-case letters, digits and underscores, at most 63, not starting with a digit"
	if schema.startswith("pg_") or schema == "information_schema":
		return f"{schema} is a PostgreSQL system schema"
	return ""


def url_problem(url: str) -> str:
	"""A readable problem with a ``postgresql://user@host:port/database`` URL, or ''."""
	if isinstance(url, str) and "," in urlsplit(url).netloc:
		return "give one host, not several"
	problem = http.validate_url(url, SCHEMES)
	if problem:
		return problem
	parts = urlsplit(url)
	if parts.password is not None:
		return "put the password in the connector's Password (Auth Type Basic), not in the URL"
	if not parts.path.strip("/"):
		return "the URL must name a database: postgresql://user@host:5432/database"
	unknown = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)} - URL_PARAMETERS
	if unknown:
		return (
			"the URL may only set "
			+ ", ".join(sorted(URL_PARAMETERS))
			+ ", not "
			+ ", ".join(sorted(unknown))
		)
	return ""


# -- rows ------------------------------------------------------------------------------------------
@dataclass
class Row:
	"""One event as the rows it writes."""

	event: base.OutboundEvent | None  # None for a backfill
	table: Table
	name: str
	values: dict  # column → value (as the event has it)
	types: dict  # column → PostgreSQL type
	children: list  # (child Table, parentfield, [row values], {column: type})


def row_of(event: base.OutboundEvent, table: Table | None, schema: str) -> Row:
	"""Raises ValueError when the event is not a document envelope."""
	envelope = json.loads(event.payload)
	if not isinstance(envelope, dict) or not envelope.get("doctype") or not envelope.get("name"):
		raise ValueError("the event has no doctype and name")
	data = envelope.get("data")
	data = data if isinstance(data, dict) else {}
	if table is None or table.doctype != envelope["doctype"]:
		table = Table(schema, table_name(envelope["doctype"]), envelope["doctype"], dict(STANDARD))
	deleted = str(envelope.get("type", "")).endswith(".on_trash")
	row = document_row(table, str(envelope["name"]), data, deleted, event.event_id, envelope.get("timestamp"))
	row.event = event
	return row


def document_row(
	table: Table, name: str, data: dict, deleted: bool = False, event_id: str | None = None, timestamp=None
) -> "Row":
	"""The rows one version of a document writes (an event's data, or a document a backfill read)."""
	values, types, children = {}, {}, []
	for key, value in data.items():
		if key in table.children or _is_rows(value):
			child = table.children.get(key) or Table(
				table.schema, table_name(_row_doctype(value) or f"{table.name}_{key}"), key, {}, child=True
			)
			rows = value if isinstance(value, list) else []
			children.append(_child_rows(child, key, rows, name, table.doctype))
		elif value == [] or key == "name" or not _mirrored(key, table):
			continue  # an empty table the layout does not know, Frappe's own underscore fields
		else:
			types[key] = table.columns.get(key) or inferred_type(value)
			values[key] = value
	values["name"], types["name"] = name, "text"
	values["modified"] = data.get("modified") or timestamp
	types["modified"] = "timestamp"
	values["_deleted"] = deleted
	values["_cancelled"] = _int(data.get("docstatus")) == 2
	values["_event_id"] = event_id
	types.update(_deleted="boolean", _cancelled="boolean", _event_id="text")
	return Row(None, table, name, values, types, children)


def _mirrored(key: str, table: Table) -> bool:
	"""Frappe's own underscore fields and what the layout skips are not mirrored."""
	return (
		bool(IDENTIFIER.match(key))
		and not key.startswith("_")
		and key != "doctype"
		and key not in table.skipped
	)


def _is_rows(value) -> bool:
	return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _row_doctype(rows) -> str | None:
	return rows[0].get("doctype") if _is_rows(rows) else None


def _int(value) -> int | None:
	try:
		return int(value)
	except (TypeError, ValueError):
		return None


def _child_rows(table: Table, parentfield: str, rows: list, parent: str, parenttype: str):
	types = {"parent": "text", "name": "text", "parentfield": "text", "parenttype": "text"}
	out = []
	for i, row in enumerate(rows, 1):
		values = {}
		for key, value in row.items():
			if not _mirrored(key, table) or isinstance(value, list):
				continue
			types.setdefault(key, table.columns.get(key) or CHILD_STANDARD.get(key) or inferred_type(value))
			values[key] = value
		values.update(
			parent=parent, parentfield=parentfield, parenttype=parenttype, name=str(row.get("name") or i)
		)
		out.append(values)
	return table, parentfield, out, types


def as_text(value, pg_type: str) -> str | None:
	"""A value as PostgreSQL reads it for a column of ``pg_type`` (the SQL casts it)."""
	if value is None or (value == "" and pg_type != "text"):
		return None
	if isinstance(value, bool):
		return "true" if value else "false"
	if pg_type == "jsonb":
		if isinstance(value, str):
			try:
				json.loads(value)
				return value
			except ValueError:
				pass
		return json.dumps(value, default=str)
	if isinstance(value, dict | list):
		return json.dumps(value, default=str)
	return str(value)


# -- the transport ---------------------------------------------------------------------------------
class PostgresReplicaTransport(base.Transport):
	"""Push only: events become rows of a PostgreSQL database; nothing is pulled from it."""

	mirrors_tables = True

	def __init__(self, endpoint: base.Endpoint, schema: str = DEFAULT_SCHEMA):
		super().__init__(endpoint)
		self.schema = schema
		self._columns: dict[tuple[str, str], set[str]] = {}  # the columns each table is known to have
		self._lock = threading.Lock()
		self._connections: list[psycopg.Connection] = []

	@classmethod
	def url_problem(cls, url: str) -> str:
		return url_problem(url)

	def batch_size(self, requested: int) -> int:
		return requested if (requested or 0) > 1 else DEFAULT_BATCH

	# -- connections -----------------------------------------------------------------------------
	def connect(self) -> psycopg.Connection:
		"""A new connection, after the same checks as any outbound request (no private address
		unless the connector allows it). Raises BlockedTargetError or psycopg.OperationalError."""
		endpoint = self.endpoint
		problem = url_problem(endpoint.base_url)
		if problem:
			raise http.BlockedTargetError(problem)
		http.check_host(urlsplit(endpoint.base_url).hostname, endpoint.allow_private)
		timeout = max(int(endpoint.timeout), 1)
		settings = {"connect_timeout": timeout, "autocommit": True, "application_name": "erp_connect"}
		user, password = basic_credentials(endpoint.auth_headers)
		if user:
			settings["user"] = user
		if password:
			settings["password"] = password
		conn = psycopg.connect(endpoint.base_url, **settings)
		conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(timeout * 1000)))
		with self._lock:
			self._connections.append(conn)
		return conn

	def connection(self) -> psycopg.Connection:
		conn = getattr(self._local, "conn", None)
		if conn is None or conn.closed or conn.broken:
			conn = self._local.conn = self.connect()
		return conn

	def close(self) -> None:
		with self._lock:
			connections, self._connections = self._connections, []
		for conn in connections:
			conn.close()

	def probe(self) -> None:
		"""The database's port answers (no login: the health check has no secrets)."""
		parts = urlsplit(self.endpoint.base_url)
		problem = url_problem(self.endpoint.base_url)
		if problem:
			raise http.BlockedTargetError(problem)
		http.check_host(parts.hostname, self.endpoint.allow_private)
		socket.create_connection((parts.hostname, parts.port or 5432), timeout=self.endpoint.timeout).close()

	def ping(self) -> http.Response:
		started = time.monotonic()
		conn = self.connect()
		try:
			version = conn.execute("select version()").fetchone()[0]
		finally:
			conn.close()
			with self._lock:
				self._connections = [c for c in self._connections if c is not conn]
		return http.Response(200, {}, version.encode(), time.monotonic() - started)

	def message_preview(self, target: str | None, event: base.OutboundEvent) -> dict:
		"""The rows ``event`` writes (column → value and type); nothing is connected to."""
		row = row_of(event, None, self.schema)
		where = [f"{row.table.schema}.{row.table.name}"]
		columns = {c: f"{as_text(v, row.types[c])} ({row.types[c]})" for c, v in row.values.items()}
		for child, parentfield, child_rows, _types in row.children:
			where.append(f"{child.schema}.{child.name}")
			plural = "row" if len(child_rows) == 1 else "rows"
			columns[parentfield] = f"{len(child_rows)} {plural} in {child.name}"
		host = urlsplit(self.endpoint.base_url).hostname
		return {"method": "UPSERT", "url": f"{', '.join(where)} on {host}", "headers": columns}

	# -- sending ---------------------------------------------------------------------------------
	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		results, rows = [], []
		for event in events:
			try:
				rows.append(row_of(event, route.table, self.schema))
			except (ValueError, TypeError) as e:
				results.append(dead([event.name], f"not a document event: {e}"))
		if not rows:
			return results
		try:
			conn = self.connection()
			self.prepare(conn, rows)
			written = self.write(conn, rows)
		except psycopg.Error as e:
			self.forget_columns(e)
			return [*results, base.SendResult([r.event.name for r in rows], retry_verdict(e))]
		except base.NO_RESPONSE as e:
			return [*results, base.result_of_exception([r.event.name for r in rows], e)]
		return results + written

	def write(self, conn: psycopg.Connection, rows: list[Row]) -> list[base.SendResult]:
		"""One transaction; each row under a savepoint. The commit acknowledges every row that
		was not refused."""
		delivered, failed = [], []
		deadline = time.monotonic() + self.endpoint.timeout  # a request's length: what its lease allows
		with conn.transaction():
			for i, row in enumerate(rows):
				if time.monotonic() > deadline:
					late = [r.event.name for r in rows[i:]]
					failed.append(base.SendResult(late, Verdict(Outcome.RETRY, "the batch ran out of time")))
					break
				try:
					with conn.transaction():
						self.upsert(conn, row)
					delivered.append(row.event.name)
				except psycopg.Error as e:
					if conn.broken or conn.closed:
						raise
					if permanent(e):
						failed.append(dead([row.event.name], f"PostgreSQL refused the row: {_message(e)}"))
					else:
						self.forget_columns(e)
						failed.append(base.SendResult([row.event.name], retry_verdict(e)))
		ok = [base.SendResult(delivered, Verdict(Outcome.DELIVERED, "committed"), 200)] if delivered else []
		return ok + failed

	def upsert(self, conn: psycopg.Connection, row: Row) -> None:
		table = row.table
		columns = list(row.values)
		target = sql.Identifier(table.schema, table.name)
		updates = [c for c in columns if c != "name"]
		statement = sql.SQL(
			"insert into {target} as t ({columns}, _replicated_at) values ({values}, now())"
			" on conflict (name) do update set {updates}, _replicated_at = now()"
			" where t.modified is null or (excluded.modified, excluded._deleted) >= (t.modified, t._deleted)"
			" returning name"
		).format(
			target=target,
			columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
			values=sql.SQL(", ").join(_cast(row.types[c]) for c in columns),
			updates=sql.SQL(", ").join(
				sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in updates
			),
		)
		applied = conn.execute(statement, [as_text(row.values[c], row.types[c]) for c in columns]).fetchone()
		if applied:  # an older version leaves the rows of the newer one alone
			for child, parentfield, child_rows, types in row.children:
				self.replace_children(conn, child, parentfield, row, child_rows, types)

	def replace_children(self, conn, child: Table, parentfield: str, row: Row, child_rows: list, types: dict):
		target = sql.Identifier(child.schema, child.name)
		conn.execute(
			sql.SQL("delete from {} where parent = %s and parenttype = %s and parentfield = %s").format(
				target
			),
			[row.name, row.table.doctype, parentfield],
		)
		by_columns: dict[tuple, list[dict]] = {}  # rows of one doctype have the same fields
		for values in child_rows:
			by_columns.setdefault(tuple(values), []).append(values)
		for columns, group in by_columns.items():
			statement = sql.SQL(
				"insert into {target} ({columns}) values ({values}) on conflict (parent, name) do update set {updates}"
			).format(
				target=target,
				columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
				values=sql.SQL(", ").join(_cast(types[c]) for c in columns),
				updates=sql.SQL(", ").join(
					sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns
				),
			)
			with conn.cursor() as cursor:  # one round trip for the rows (pipelined)
				cursor.executemany(statement, [[as_text(v[c], types[c]) for c in columns] for v in group])

	# -- backfill and rebuild ----------------------------------------------------------------------
	def backfill(self, table: Table, documents: Sequence[dict]) -> int:
		"""Write a chunk of documents as they are now (whole-document dicts, distinct names) with
		COPY, in one transaction: into a staging table, then upserted like events (a row an event
		wrote since, newer, is kept) with the child rows of what was applied. Returns how many
		documents were applied. A deadlock with the events written meanwhile is tried again (three
		times); other psycopg errors are raised."""
		rows = [document_row(table, str(doc["name"]), doc) for doc in documents]
		if not rows:
			return 0
		for attempt in range(3):
			try:
				return self._copy(table, rows)
			except psycopg.errors.TransactionRollbackError:
				if attempt == 2:
					raise
				time.sleep(0.2 * (attempt + 1))
		return 0  # not reached

	def _copy(self, table: Table, rows: list[Row]) -> int:
		conn = self.connection()
		self.prepare(conn, rows)
		columns = list(dict.fromkeys(c for row in rows for c in row.values))
		types = {c: t for row in rows for c, t in row.types.items()}
		target, stage = sql.Identifier(table.schema, table.name), sql.Identifier("erp_connect_stage")
		names = sql.SQL(", ").join(map(sql.Identifier, columns))
		with conn.transaction():
			conn.execute(
				sql.SQL("create temp table {} (like {} including defaults) on commit drop").format(
					stage, target
				)
			)
			with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(stage, names)) as copy:
				for row in rows:
					copy.write_row([as_text(row.values.get(c), types[c]) for c in columns])
			applied = {
				r[0]
				for r in conn.execute(
					sql.SQL(
						"insert into {target} as t ({names}, _replicated_at) select {names}, now() from {stage}"
						" on conflict (name) do update set {updates}, _replicated_at = now()"
						" where t.modified is null"
						" or (excluded.modified, excluded._deleted) >= (t.modified, t._deleted)"
						" returning name"
					).format(
						target=target,
						names=names,
						stage=stage,
						updates=sql.SQL(", ").join(
							sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
							for c in columns
							if c != "name"
						),
					)
				)
			}
			copy_children(conn, table, [row for row in rows if row.name in applied])
		return len(applied)

	def backfill_lines(self, chunk: "CopyChunk") -> int:
		"""Write a backfill chunk that the source database formatted as COPY CSV lines itself (no
		value passes through Python): straight into the table while none of its names is there,
		else (events wrote some of them since) staged and upserted as ``backfill`` does, the newer
		row kept. One transaction; returns how many documents were applied."""
		table = chunk.table
		needed: dict = {}
		_need(needed, table, {c: table.columns.get(c) or FLAG_TYPES[c] for c in chunk.columns})
		for child in chunk.children:
			_need(needed, child.table, {c: child.table.columns[c] for c in child.columns})
		conn = self.connection()
		self.prepare_tables(conn, needed)
		try:
			return self._write_lines(conn, chunk)
		except psycopg.DataError as e:
			raise NotCopyable(_message(e))

	def _write_lines(self, conn: psycopg.Connection, chunk: "CopyChunk") -> int:
		table = chunk.table
		target = sql.Identifier(table.schema, table.name)
		names = sql.SQL(", ").join(map(sql.Identifier, chunk.columns))
		with conn.transaction():
			try:
				with conn.transaction():  # a savepoint: a name already there undoes the COPY alone
					_copy_lines(conn, target, names, chunk.lines)
				# none of these documents had a row, so none has child rows (they are written together)
				applied, replaced = None, []  # None: all of them
			except psycopg.errors.UniqueViolation:
				applied = self._stage_and_upsert(conn, table, chunk, names)
				replaced = list(applied)
			for child in chunk.children:
				child_target = sql.Identifier(child.table.schema, child.table.name)
				if replaced:
					conn.execute(
						sql.SQL(
							"delete from {} where parenttype = %s and parentfield = %s and parent = any(%s)"
						).format(child_target),
						[table.doctype, child.parentfield, replaced],
					)
				lines = [line for parent, line in child.rows if applied is None or parent in applied]
				_copy_lines(
					conn,
					child_target,
					sql.SQL(", ").join(map(sql.Identifier, child.columns)),
					b"\n".join(lines) + b"\n" if lines else b"",
				)
		return chunk.count if applied is None else len(applied)

	def _stage_and_upsert(self, conn, table: Table, chunk: "CopyChunk", names) -> set[str]:
		target, stage = sql.Identifier(table.schema, table.name), sql.Identifier("erp_connect_stage")
		conn.execute(
			sql.SQL("create temp table {} (like {} including defaults) on commit drop").format(stage, target)
		)
		_copy_lines(conn, stage, names, chunk.lines)
		updates = sql.SQL(", ").join(
			sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in chunk.columns if c != "name"
		)
		statement = sql.SQL(
			"insert into {target} as t ({names}, _replicated_at) select {names}, now() from {stage}"
			" on conflict (name) do update set {updates}, _replicated_at = now()"
			" where t.modified is null or (excluded.modified, excluded._deleted) >= (t.modified, t._deleted)"
			" returning name"
		).format(target=target, names=names, stage=stage, updates=updates)
		return {r[0] for r in conn.execute(statement)}

	def drop_table(self, table: Table) -> None:
		"""Drop a doctype's table and delete its rows of the child tables (other doctypes may share
		a child table: Sales Taxes and Charges); a rebuild fills them again."""
		conn = self.connection()
		with conn.transaction():
			conn.execute("select pg_advisory_xact_lock(hashtext(%s))", ["erp_connect:" + table.schema])
			conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table.schema, table.name)))
			for child in table.children.values():
				if existing_columns(conn, child):
					conn.execute(
						sql.SQL("delete from {} where parenttype = %s").format(
							sql.Identifier(child.schema, child.name)
						),
						[table.doctype],
					)
		self._columns.clear()

	# -- the schema ------------------------------------------------------------------------------
	def prepare(self, conn: psycopg.Connection, rows: list[Row]) -> None:
		"""Create the tables and columns the rows need and that are not known to exist yet."""
		needed: dict[tuple[str, str], tuple[Table, dict]] = {}
		for row in rows:
			_need(needed, row.table, {**row.table.columns, **row.types})
			for child, _, _, types in row.children:
				_need(needed, child, {**child.columns, **types})
		self.prepare_tables(conn, needed)

	def prepare_tables(self, conn: psycopg.Connection, needed: dict) -> None:
		"""Create the tables and columns in ``needed`` ((schema, table) → (Table, {column: type}))
		not known to exist yet, in a transaction of their own, one writer of the schema at a time
		(an advisory lock)."""
		missing = {
			key: spec for key, spec in needed.items() if not set(spec[1]) <= self._columns.get(key, set())
		}
		if not missing:
			return
		with conn.transaction():
			for schema in sorted({schema for schema, _ in missing}):
				conn.execute("select pg_advisory_xact_lock(hashtext(%s))", ["erp_connect:" + schema])
				conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
			for key, (table, columns) in missing.items():
				self._columns[key] = ensure_table(conn, table, columns)

	def forget_columns(self, error: BaseException) -> None:
		"""A table or column that is gone (dropped by a rebuild): look at the schema again next time."""
		if isinstance(error, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
			self._columns.clear()


@dataclass(frozen=True)
class CopyLines:
	"""A child table's rows of a backfill chunk: (parent, COPY CSV line) in ``columns`` order."""

	table: Table
	parentfield: str
	columns: list[str]
	rows: list[tuple[str, bytes]]


@dataclass(frozen=True)
class CopyChunk:
	"""A chunk of ``count`` documents, the last by name ``last``, formatted as COPY CSV by the
	database they come from: ``lines``, one a document (a line may hold quoted line breaks), in
	``columns`` order (fields, then the flags); and their child rows."""

	table: Table
	columns: list[str]
	count: int
	last: str
	lines: bytes
	children: list[CopyLines]


FLAG_TYPES = {"_deleted": "boolean", "_cancelled": "boolean", "_event_id": "text"}


class NotCopyable(ValueError):
	"""PostgreSQL refused a value of a chunk's lines as they came (a time past 24 h, say): the
	chunk is written again the slow way, each value converted in Python."""


def _copy_lines(conn: psycopg.Connection, target, names, lines: bytes) -> None:
	if not lines:
		return
	statement = sql.SQL("copy {} ({}) from stdin with (format csv)").format(target, names)
	with conn.cursor().copy(statement) as copy:
		copy.write(lines if lines.endswith(b"\n") else lines + b"\n")


def copy_children(conn: psycopg.Connection, table: Table, rows: list[Row]) -> None:
	"""Replace the child rows of the parents a backfill chunk applied: one delete and one COPY per
	child table."""
	tables: dict[tuple[str, str, str], tuple[Table, list[str], list[dict], dict]] = {}
	for row in rows:
		for child, parentfield, child_rows, types in row.children:
			_, parents, all_rows, all_types = tables.setdefault(
				(child.schema, child.name, parentfield), (child, [], [], {})
			)
			parents.append(row.name)
			all_rows.extend(child_rows)
			all_types.update({c: t for c, t in types.items() if c not in all_types})
	for (_, _, parentfield), (child, parents, child_rows, types) in tables.items():
		target = sql.Identifier(child.schema, child.name)
		conn.execute(
			sql.SQL("delete from {} where parenttype = %s and parentfield = %s and parent = any(%s)").format(
				target
			),
			[table.doctype, parentfield, parents],
		)
		if not child_rows:
			continue
		columns = list(dict.fromkeys(c for values in child_rows for c in values))
		statement = sql.SQL("copy {} ({}) from stdin").format(
			target, sql.SQL(", ").join(map(sql.Identifier, columns))
		)
		with conn.cursor().copy(statement) as copy:
			for values in child_rows:
				copy.write_row([as_text(values.get(c), types[c]) for c in columns])


def _need(needed: dict, table: Table, columns: dict) -> None:
	key = (table.schema, table.name)
	if key in needed:
		needed[key][1].update({c: t for c, t in columns.items() if c not in needed[key][1]})
	else:
		needed[key] = (table, dict(columns))


def ensure_table(conn: psycopg.Connection, table: Table, columns: Mapping[str, str]) -> set[str]:
	"""Create ``table`` if it is missing and add the columns it lacks; returns its columns."""
	target = sql.Identifier(table.schema, table.name)
	if table.child:
		conn.execute(
			sql.SQL(
				"create table if not exists {} (parent text not null, name text not null,"
				" parentfield text, parenttype text, primary key (parent, name))"
			).format(target)
		)
	else:
		conn.execute(
			sql.SQL(
				"create table if not exists {} (name text primary key, modified timestamp,"
				" _deleted boolean not null default false, _cancelled boolean not null default false,"
				" _event_id text, _replicated_at timestamptz not null default now())"
			).format(target)
		)
	existing = existing_columns(conn, table)
	adds = [
		sql.SQL("add column if not exists {} {}").format(sql.Identifier(c), sql.SQL(_checked_type(t)))
		for c, t in columns.items()
		if c not in existing
	]
	if adds:
		conn.execute(sql.SQL("alter table {} ").format(target) + sql.SQL(", ").join(adds))
	return existing | set(columns)


def existing_columns(conn: psycopg.Connection, table: Table) -> set[str]:
	return {
		r[0]
		for r in conn.execute(
			"select column_name from information_schema.columns where table_schema = %s and table_name = %s",
			[table.schema, table.name],
		)
	}


def _checked_type(pg_type: str) -> str:
	if pg_type not in COLUMN_TYPES:
		raise ValueError(f"not a column type: {pg_type}")
	return pg_type


def _cast(pg_type: str) -> sql.Composable:
	return sql.SQL("%s::" + _checked_type(pg_type))


def _message(error: psycopg.Error) -> str:
	return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def dead(names: list[str], reason: str) -> base.SendResult:
	return base.SendResult(names, Verdict(Outcome.DEAD, reason))


def permanent(error: psycopg.Error) -> bool:
	"""A row the database will refuse every time (a value of the wrong type, a column of another
	type): the event is dead. A missing table or column (a rebuild dropped it) is not."""
	if isinstance(error, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
		return False
	return isinstance(error, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError)


def retry_verdict(error: psycopg.Error) -> Verdict:
	"""The database did not take the batch (no connection, a deadlock, a timeout): later, same events."""
	return Verdict(Outcome.RETRY, f"{type(error).__name__}: {_message(error)}")


def basic_credentials(auth_headers: Mapping[str, str]) -> tuple[str | None, str | None]:
	"""The user and password of a connector with Auth Type Basic (its Authorization header)."""
	value = next((v for k, v in auth_headers.items() if k.lower() == "authorization"), "")
	if not value.startswith("Basic "):
		return None, None
	try:
		user, _, password = base64.b64decode(value[6:]).decode().partition(":")
	except ValueError:
		return None, None
	return unquote(user) or None, password or None
