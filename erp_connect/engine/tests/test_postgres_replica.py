"""The PostgreSQL replica against the real PostgreSQL on 127.0.0.1:5432 (skipped when nothing
listens there). Each test writes into a schema of its own and drops it."""

import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest

from erp_connect.engine import http, outbound, transports
from erp_connect.engine.retry import Outcome
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route
from erp_connect.engine.transports import postgres_replica as pr
from erp_connect.testing.servers import port_open

HOST, PORT = "127.0.0.1", 5432
DATABASE = "erp_connect_test"
URL = f"postgresql://postgres@{HOST}:{PORT}/{DATABASE}"


pytestmark = pytest.mark.skipif(not port_open(PORT, HOST), reason="no PostgreSQL on 127.0.0.1:5432")


@pytest.fixture(scope="module")
def database():
	"""The test database, created when missing (and dropped again when this module made it)."""
	with psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True) as admin:
		made = not admin.execute("select 1 from pg_database where datname = %s", [DATABASE]).fetchone()
		if made:
			admin.execute(f'create database "{DATABASE}"')
	yield URL
	if made:
		with psycopg.connect(f"postgresql://postgres@{HOST}:{PORT}/postgres", autocommit=True) as admin:
			admin.execute(f'drop database if exists "{DATABASE}" with (force)')


@pytest.fixture
def schema(database):
	name = "t_" + secrets.token_hex(6)
	yield name
	with psycopg.connect(database, autocommit=True) as conn:
		conn.execute(f'drop schema if exists "{name}" cascade')


@pytest.fixture
def transport(database):
	t = transports.kind("PostgreSQL")(Endpoint(database, timeout=5, allow_private=True))
	yield t
	t.close()


def customer_table(schema: str) -> pr.Table:
	return pr.describe(
		schema,
		"Customer",
		[
			("customer_name", "Data"),
			("credit_limit", "Currency"),
			("disabled", "Check"),
			("since", "Date"),
			("notes", "Long Text"),
			("extra", "JSON"),
			("secret", "Password"),
		],
		{"items": ("Customer Item", [("item_code", "Link"), ("qty", "Int"), ("rate", "Float")])},
	)


def event(name: str, modified: str, data: dict | None = None, doc_event: str = "on_update", seq: int = 1):
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, "Customer", name, doc_event, seq, "2026-12-01T10:00:00")
	body = {"name": name, "doctype": "Customer", "modified": modified, "docstatus": 0, **(data or {})}
	return OutboundEvent(f"row-{secrets.token_hex(4)}", event_id, outbound.envelope(ref, body))


def rows(schema: str, table: str = "customer", order: str = "name") -> list[dict]:
	with psycopg.connect(URL, row_factory=psycopg.rows.dict_row) as conn:
		return conn.execute(f'select * from "{schema}"."{table}" order by {order}').fetchall()


def outcomes(results) -> dict[str, Outcome]:
	return {name: r.verdict.outcome for r in results for name in r.names}


def test_creates_the_schema_and_table_and_upserts_typed_rows(transport, schema):
	route = Route("", table=customer_table(schema))
	e = event(
		"CUST-1",
		"2026-12-01 10:00:00.123456",
		{"customer_name": "Acme", "credit_limit": 1500.5, "disabled": 1, "since": "2026-01-31"}
		| {"extra": {"tier": "gold"}, "secret": "*****", "_user_tags": "x"},
	)
	assert outcomes(transport.send(route, [e])) == {e.name: Outcome.DELIVERED}
	(row,) = rows(schema)
	assert row["name"] == "CUST-1" and row["customer_name"] == "Acme"
	assert row["credit_limit"] == Decimal("1500.5") and row["disabled"] is True
	assert str(row["since"]) == "2026-01-31" and row["extra"] == {"tier": "gold"}
	assert str(row["modified"]) == "2026-12-01 10:00:00.123456"
	assert row["_deleted"] is False and row["_cancelled"] is False and row["_event_id"] == e.event_id
	assert "secret" not in row and "_user_tags" not in row
	assert row["notes"] is None  # declared by the layout, not in the data

	changed = event("CUST-1", "2026-12-01 11:00:00", {"customer_name": "Acme Ltd", "disabled": 0})
	transport.send(route, [changed])
	(row,) = rows(schema)
	assert row["customer_name"] == "Acme Ltd" and row["disabled"] is False
	assert row["credit_limit"] == Decimal("1500.5")  # a field the event does not carry is kept


def test_an_older_version_never_overwrites_a_newer_one(transport, schema):
	route = Route("", table=customer_table(schema))
	transport.send(route, [event("CUST-1", "2026-12-01 11:00:00", {"customer_name": "new"})])
	old = event(
		"CUST-1", "2026-12-01 10:00:00", {"customer_name": "old", "items": [{"name": "r1", "qty": 1}]}
	)
	assert outcomes(transport.send(route, [old])) == {old.name: Outcome.DELIVERED}  # acknowledged, ignored
	(row,) = rows(schema)
	assert row["customer_name"] == "new"
	assert rows(schema, "customer_item") == []  # nor its child rows


def test_deletion_and_cancellation_are_flags(transport, schema):
	route = Route("", table=customer_table(schema))
	transport.send(route, [event("CUST-1", "2026-12-01 10:00:00"), event("CUST-2", "2026-12-01 10:00:00")])
	transport.send(route, [event("CUST-1", "2026-12-01 10:00:00", doc_event="on_trash")])
	transport.send(route, [event("CUST-2", "2026-12-01 10:05:00", {"docstatus": 2}, doc_event="on_cancel")])
	one, two = rows(schema)
	assert (one["_deleted"], one["_cancelled"]) == (True, False)
	assert (two["_deleted"], two["_cancelled"], two["docstatus"]) == (False, True, 2)
	# a retry of the update of the same version arrives late: the deletion wins the tie
	transport.send(route, [event("CUST-1", "2026-12-01 10:00:00")])
	assert rows(schema)[0]["_deleted"] is True
	# the name is used again by a newer document
	transport.send(route, [event("CUST-1", "2026-12-02 09:00:00")])
	assert rows(schema)[0]["_deleted"] is False


def test_child_rows_are_replaced_on_each_upsert(transport, schema):
	route = Route("", table=customer_table(schema))
	lines = [
		{"name": "r1", "item_code": "A", "qty": 1, "idx": 1},
		{"name": "r2", "item_code": "B", "qty": 2, "idx": 2},
	]
	transport.send(route, [event("CUST-1", "2026-12-01 10:00:00", {"items": lines})])
	transport.send(route, [event("CUST-2", "2026-12-01 10:00:00", {"items": [{"name": "x1", "qty": 7}]})])
	assert [(r["parent"], r["name"], r["qty"]) for r in rows(schema, "customer_item", "parent, name")] == [
		("CUST-1", "r1", 1),
		("CUST-1", "r2", 2),
		("CUST-2", "x1", 7),
	]
	newer = [
		{"name": "r2", "item_code": "B", "qty": 5, "idx": 1, "rate": 9.5},
		{"name": "r3", "qty": 1, "idx": 2},
	]
	transport.send(route, [event("CUST-1", "2026-12-01 11:00:00", {"items": newer})])
	got = rows(schema, "customer_item", "parent, name")
	assert [(r["parent"], r["name"], r["qty"]) for r in got] == [
		("CUST-1", "r2", 5),
		("CUST-1", "r3", 1),
		("CUST-2", "x1", 7),
	]
	assert got[0]["rate"] == Decimal("9.5") and got[0]["parentfield"] == "items"
	assert got[0]["parenttype"] == "Customer"
	transport.send(route, [event("CUST-1", "2026-12-01 12:00:00", {"items": []})])
	assert [r["parent"] for r in rows(schema, "customer_item")] == ["CUST-2"]


def test_a_new_field_in_the_data_becomes_a_column(transport, schema):
	route = Route("", table=customer_table(schema))
	transport.send(route, [event("CUST-1", "2026-12-01 10:00:00")])
	assert "loyalty_points" not in rows(schema)[0]
	e = event("CUST-2", "2026-12-01 10:00:00", {"loyalty_points": 12, "segment": "B2B", "tags": ["a"]})
	assert outcomes(transport.send(route, [e])) == {e.name: Outcome.DELIVERED}
	one, two = rows(schema)
	assert one["loyalty_points"] is None and two["loyalty_points"] == 12
	assert two["segment"] == "B2B" and two["tags"] == ["a"]
	# a field the layout gains later (a custom field) is added with its declared type
	wider = pr.describe(schema, "Customer", [("customer_name", "Data"), ("vip", "Check")])
	transport.send(Route("", table=wider), [event("CUST-3", "2026-12-01 10:00:00", {"vip": 1})])
	assert rows(schema)[2]["vip"] is True


def test_a_row_of_the_wrong_type_is_dead_and_the_rest_of_the_batch_lands(transport, schema):
	route = Route("", table=customer_table(schema))
	good, bad, also_good = (
		event("CUST-1", "2026-12-01 10:00:00", {"credit_limit": 10}),
		event("CUST-2", "2026-12-01 10:00:00", {"credit_limit": "lots"}),
		event("CUST-3", "2026-12-01 10:00:00", {"since": "2026-02-01"}),
	)
	broken = OutboundEvent("row-broken", "evt_x", "not json")
	results = transport.send(route, [good, bad, also_good, broken])
	assert outcomes(results) == {
		good.name: Outcome.DELIVERED,
		bad.name: Outcome.DEAD,
		also_good.name: Outcome.DELIVERED,
		broken.name: Outcome.DEAD,
	}
	reason = next(r.verdict.reason for r in results if bad.name in r.names)
	assert "numeric" in reason and "lots" in reason
	assert [r["name"] for r in rows(schema)] == ["CUST-1", "CUST-3"]


def test_replaying_everything_in_any_batching_converges_to_the_same_tables(database, schema):
	"""The history of a few documents, sent once event by event and then replayed twice in
	random batches (each document's events in order, as the drain keeps them): the same tables."""
	rng = random.Random(14)
	history = []
	for n in range(6):
		name = f"CUST-{n}"
		for version in range(rng.randint(1, 4)):
			lines = [{"name": f"{name}-{i}", "qty": version + i} for i in range(rng.randint(0, 3))]
			data = {"customer_name": f"{name} v{version}", "credit_limit": version * 10.5, "items": lines}
			history.append(event(name, f"2026-12-01 10:0{version}:00", data, seq=version + 1))
		if rng.random() < 0.4:
			history.append(event(name, "2026-12-01 10:09:00", doc_event="on_trash", seq=9))

	def snapshot():
		keep = lambda r: {k: v for k, v in r.items() if k not in ("_replicated_at", "_event_id")}  # noqa: E731
		return [keep(r) for r in rows(schema)], rows(schema, "customer_item", "parent, name")

	t = transports.kind("PostgreSQL")(Endpoint(database, timeout=5, allow_private=True))
	route = Route("", table=customer_table(schema))
	try:
		for e in history:
			assert outcomes(t.send(route, [e])) == {e.name: Outcome.DELIVERED}
		first = snapshot()
		for _ in range(2):
			replay = list(history)
			while replay:
				batch = []
				for e in list(replay):  # at most one event per document per batch, the oldest first
					doc = e.payload.split('"name":"')[1]
					if len(batch) < 4 and not any(b.payload.split('"name":"')[1] == doc for b in batch):
						if all(
							x is e or x.payload.split('"name":"')[1] != doc for x in replay[: replay.index(e)]
						):
							batch.append(e)
				for e in batch:
					replay.remove(e)
				assert all(r.verdict.outcome is Outcome.DELIVERED for r in t.send(route, batch))
			assert snapshot() == first
	finally:
		t.close()
	assert len(first[0]) == 6


def test_several_threads_create_the_same_table_at_once(database, schema):
	t = transports.kind("PostgreSQL")(Endpoint(database, timeout=5, allow_private=True))
	route = Route("", table=customer_table(schema))
	try:
		with ThreadPoolExecutor(8) as pool:
			results = list(
				pool.map(
					lambda n: t.send(
						route, [event(f"CUST-{n}", "2026-12-01 10:00:00", {f"field_{n % 3}": n})]
					),
					range(16),
				)
			)
	finally:
		t.close()
	assert all(r.verdict.outcome is Outcome.DELIVERED for rs in results for r in rs)
	assert len(rows(schema)) == 16


def test_without_a_layout_the_table_is_read_off_the_data(transport, schema):
	transport.schema = schema
	e = event(
		"CUST-1", "2026-12-01 10:00:00", {"customer_name": "Acme", "credit_limit": 5, "items": [{"qty": 1}]}
	)
	assert outcomes(transport.send(Route(""), [e])) == {e.name: Outcome.DELIVERED}
	(row,) = rows(schema)
	assert row["customer_name"] == "Acme" and row["credit_limit"] == 5
	assert [(r["parent"], r["name"], r["qty"]) for r in rows(schema, "customer_items")] == [
		("CUST-1", "1", 1)
	]


def test_no_database_is_a_retry_and_a_private_address_without_permission_is_dead(schema):
	closed = transports.kind("PostgreSQL")(
		Endpoint("postgresql://postgres@127.0.0.1:1/db", timeout=1, allow_private=True)
	)
	e = event("CUST-1", "2026-12-01 10:00:00")
	(result,) = closed.send(Route("", table=customer_table(schema)), [e])
	assert result.verdict.outcome is Outcome.RETRY and result.names == [e.name]
	guarded = transports.kind("PostgreSQL")(Endpoint(URL, timeout=1))
	(result,) = guarded.send(Route("", table=customer_table(schema)), [e])
	assert result.verdict.outcome is Outcome.DEAD and "non-public address" in result.verdict.reason


def test_ping_and_batch_size(transport):
	response = transport.ping()
	assert response.status == 200 and b"PostgreSQL" in response.body
	assert transport.batch_size(1) == pr.DEFAULT_BATCH and transport.batch_size(20) == 20
	assert transport.mirrors_tables


@pytest.mark.parametrize(
	"url, problem",
	[
		("postgresql://user@127.0.0.1:5432/db", ""),
		("postgres://db.example.com/analytics?sslmode=require", ""),
		("https://db.example.com/analytics", "must start with postgresql://"),
		("postgresql://127.0.0.1:5432/", "must name a database"),
		("postgresql://u:secret@db.example.com/db", "Password"),
		("postgresql://db.example.com/db?host=/var/run/postgresql", "not host"),
		("postgresql://a,b/db", "one host"),
		("postgresql://db.example.com:99999/db", "invalid port"),
		("", "empty"),
	],
)
def test_url_problems(url, problem):
	found = transports.kind("PostgreSQL").url_problem(url)
	assert (problem in found and found) if problem else found == ""
	assert transports.kind("Webhook").url_problem("postgresql://u@h/db")  # other kinds stay http(s)


def test_layout_from_meta():
	table = customer_table("erpnext")
	assert table.name == "customer" and table.columns["credit_limit"] == "numeric"
	assert table.columns["disabled"] == "boolean" and table.columns["since"] == "date"
	assert table.columns["extra"] == "jsonb" and table.columns["notes"] == "text"
	assert table.columns["modified"] == "timestamp" and "secret" not in table.columns
	child = table.children["items"]
	assert child.name == "customer_item" and child.child and child.columns["qty"] == "bigint"
	assert pr.table_name("Sales Invoice Item") == "sales_invoice_item"
	assert pr.schema_problem("erpnext") == "" and pr.schema_problem("pg_catalog")
	assert pr.schema_problem("Robert'); drop")


def test_probe_reaches_the_port_without_logging_in(database):
	transports.kind("PostgreSQL")(Endpoint(database, timeout=1, allow_private=True)).probe()
	with pytest.raises(OSError):
		transports.kind("PostgreSQL")(
			Endpoint("postgresql://u@127.0.0.1:1/db", timeout=1, allow_private=True)
		).probe()
	with pytest.raises(http.BlockedTargetError):
		transports.kind("PostgreSQL")(Endpoint(database, timeout=1)).probe()


def test_backfill_copies_documents_and_keeps_what_events_wrote_since(transport, schema):
	table = customer_table(schema)
	transport.send(
		Route("", table=table), [event("CUST-2", "2026-12-02 10:00:00", {"customer_name": "by event"})]
	)
	documents = [
		{
			"name": f"CUST-{n}",
			"modified": "2026-12-01 10:00:00",
			"customer_name": f"copied {n}",
			"credit_limit": n * 1.5,
			"disabled": n % 2,
			"docstatus": 0,
			"items": [{"name": f"L{n}-{i}", "qty": i, "doctype": "Customer Item"} for i in range(n)],
		}
		for n in range(1, 4)
	]
	assert transport.backfill(table, documents) == 2  # CUST-2 has a newer row already
	one, two, three = rows(schema)
	assert (
		one["customer_name"] == "copied 1"
		and one["disabled"] is True
		and three["credit_limit"] == Decimal("4.5")
	)
	assert two["customer_name"] == "by event"
	assert [(r["parent"], r["name"]) for r in rows(schema, "customer_item", "parent, name")] == [
		("CUST-1", "L1-0"),
		("CUST-3", "L3-0"),
		("CUST-3", "L3-1"),
		("CUST-3", "L3-2"),
	]
	assert transport.backfill(table, documents) == 2  # resuming a chunk again changes nothing
	assert len(rows(schema)) == 3 and len(rows(schema, "customer_item")) == 4
	transport.drop_table(table)
	assert rows(schema, "customer_item") == []
	assert transport.backfill(table, documents) == 3  # rebuilt
	assert rows(schema)[1]["customer_name"] == "copied 2"


def test_a_batch_that_runs_out_of_time_hands_the_rest_back(database, schema):
	t = transports.kind("PostgreSQL")(Endpoint(database, timeout=0.3, allow_private=True))
	route = Route("", table=customer_table(schema))
	slow = event("CUST-0", "2026-12-01 10:00:00", {"customer_name": "slow"})
	rest = [event(f"CUST-{n}", "2026-12-01 10:00:00") for n in range(1, 4)]
	original = t.upsert

	def slow_upsert(conn, row):
		original(conn, row)
		if row.name == "CUST-0":
			time.sleep(0.4)

	t.upsert = slow_upsert
	try:
		got = outcomes(t.send(route, [slow, *rest]))
	finally:
		t.close()
	assert got == {slow.name: Outcome.DELIVERED, **{e.name: Outcome.RETRY for e in rest}}
	assert [r["name"] for r in rows(schema)] == ["CUST-0"]


def test_the_preview_shows_the_rows_an_event_writes_and_writes_nothing(database, schema):
	t = transports.kind("PostgreSQL")(Endpoint(database, timeout=5, allow_private=True), schema=schema)
	e = event(
		"C-1",
		"2026-12-01 10:00:00",
		{
			"credit_limit": 5,
			"items": [{"doctype": "Customer Item", "item_code": "I-1", "qty": 2}],
		},
	)
	shown = t.message_preview("", e)
	t.close()
	assert shown["method"] == "UPSERT"
	assert f"{schema}.customer" in shown["url"] and "customer_item" in shown["url"]
	assert shown["headers"]["name"] == "C-1 (text)"
	assert shown["headers"]["credit_limit"] == "5 (numeric)"
	assert shown["headers"]["_event_id"] == f"{e.event_id} (text)"
	assert shown["headers"]["items"] == "1 row in customer_item"
	with psycopg.connect(database) as conn:
		assert not conn.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone()


def copy_chunk(table: pr.Table, documents: list[tuple]) -> pr.CopyChunk:
	"""What the services side reads from MariaDB, as COPY CSV lines: (name, modified, customer_name,
	disabled, docstatus, n) documents, each with ``n`` item rows; the flags at the end."""

	def quoted(text: str) -> str:
		return '"' + text.replace('"', '""') + '"'

	columns = ["name", "modified", "customer_name", "disabled", "docstatus", *pr.FLAG_TYPES]
	rows = [
		(
			name,
			",".join(
				[quoted(name), modified, quoted(text), str(disabled), str(docstatus), "f", "f", ""]
			).encode(),
		)
		for name, modified, text, disabled, docstatus, _n in documents
	]
	items = [
		(name, ",".join([quoted(name), quoted(f"L{i}"), '"items"', '"Customer"', str(i)]).encode())
		for name, _m, _t, _d, _s, n in documents
		for i in range(n)
	]
	children = [
		pr.CopyLines(
			table.children["items"], "items", ["parent", "name", "parentfield", "parenttype", "qty"], items
		)
	]
	lines = b"\n".join(line for _, line in rows)
	return pr.CopyChunk(table, columns, len(rows), rows[-1][0] if rows else "", lines, children)


def test_lines_the_source_formatted_go_straight_in_and_rows_written_since_are_kept(transport, schema):
	table = customer_table(schema)
	tricky = 'tab\there\nnew line\\back\rslash, "quoted", \\N'  # as it stands in MariaDB
	chunk = copy_chunk(
		table,
		[("C-1", "2026-12-01 10:00:00", tricky, 1, 0, 2), ("C-2", "2026-12-01 10:00:00", "two", 0, 2, 1)],
	)
	assert transport.backfill_lines(chunk) == 2  # nothing there yet: one COPY, no staging
	one, two = rows(schema)
	assert one["customer_name"] == tricky and one["disabled"] is True
	assert (two["_cancelled"], two["_deleted"]) == (False, False)  # the flags come from the lines
	assert len(rows(schema, "customer_item")) == 3

	transport.send(
		Route("", table=table), [event("C-2", "2026-12-02 10:00:00", {"customer_name": "by event"})]
	)
	again = copy_chunk(
		table,
		[("C-2", "2026-12-01 10:00:00", "stale", 0, 0, 4), ("C-3", "2026-12-01 10:00:00", "three", 0, 0, 1)],
	)
	assert transport.backfill_lines(again) == 1  # C-2 is there, newer: staged, upserted, kept
	names = {r["name"]: r["customer_name"] for r in rows(schema)}
	assert names == {"C-1": tricky, "C-2": "by event", "C-3": "three"}
	items = [(r["parent"], r["name"]) for r in rows(schema, "customer_item", "parent, name")]
	# the stale chunk's four rows of C-2 are not applied; its row from before stays
	assert items == [("C-1", "L0"), ("C-1", "L1"), ("C-2", "L0"), ("C-3", "L0")]


def test_lines_with_a_value_postgresql_refuses_write_nothing_and_say_so(transport, schema):
	table = customer_table(schema)
	transport.backfill_lines(copy_chunk(table, [("C-0", "2026-12-01 10:00:00", "fine", 0, 0, 0)]))
	bad = copy_chunk(
		table, [("C-1", "2026-12-01 10:00:00", "ok", 0, 0, 1), ("C-2", "not a time", "x", 0, 0, 0)]
	)
	with pytest.raises(pr.NotCopyable, match="timestamp"):
		transport.backfill_lines(bad)
	assert [r["name"] for r in rows(schema)] == ["C-0"]
	assert rows(schema, "customer_item") == []
