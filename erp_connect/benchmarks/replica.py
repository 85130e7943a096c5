"""Analytics replica benchmark, against the PostgreSQL on 127.0.0.1:5432, in a schema of its own:

1. backfill: 100,000 Customers copied into the replica by the backfill (MariaDB writes each chunk of
   10,000 as COPY CSV lines, PostgreSQL copies one chunk while the next is read), against a bare
   ``COPY`` of the same rows from a file into a table of the same columns (the limit), five times
   each way, the median pair reported;
2. lag: a steady 20 Customer saves a second for 2 minutes with one RQ worker delivering; for each
   save, the time from its commit to the moment its row is visible in PostgreSQL (p50, p95).

	bench --site test.localhost execute erp_connect.benchmarks.replica.run
	bench --site test.localhost execute erp_connect.benchmarks.replica.run --kwargs "{'customers': 10000, 'lag_seconds': 30}"

The Customers (named "_Bench EC replica ..."), the connector, its rules and events, the schema and,
when the benchmark made it, the database are removed at the end. Run it with no other worker.
"""

import os
import statistics
import tempfile
import threading
import time

import frappe
import psycopg
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_job, get_queue

from erp_connect.benchmarks.push import PREFIX, cleanup, make_connector, pending, wait_for
from erp_connect.services.push import replica
from erp_connect.services.push.outbox import clear_rules_cache
from erp_connect.testing.base import start_worker

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "erp_connect_bench"
CONNECTOR = PREFIX + "replica"
CUSTOMER_PREFIX = PREFIX + "replica "
BACKFILL_TARGET = 0.5  # of a bare COPY
LAG_TARGET_P95 = 2.0  # seconds


def run(
	customers: int = 100_000,
	lag_seconds: float = 120,
	saves_per_second: float = 20,
	chunk: int = replica.BACKFILL_CHUNK,
	repeats: int = 5,
) -> None:
	schema = "erp_bench_" + frappe.generate_hash(length=6).lower()
	made_database = ensure_database()
	url = f"{SERVER}/{DATABASE}"
	try:
		remove(schema)
		make_connector(url, CONNECTOR, connector_type="PostgreSQL", replica_schema=schema, timeout_seconds=30)
		seed_customers(customers)
		rule = make_rule()
		runs = []
		for n in range(repeats):  # a backfill of 100,000 takes about a second: take the median
			if n:
				reset(rule, url, schema)
			runs.append((bench_backfill(rule, chunk), bench_bare_copy(url, schema)))
		runs.sort(key=lambda r: r[0]["rate"] / r[1]["rate"])
		backfilled, bare = runs[len(runs) // 2]
		backfilled["ratios"] = [round(b["rate"] / c["rate"], 2) for b, c in runs]
		lag = bench_lag(url, schema, lag_seconds, saves_per_second) if lag_seconds else None
		report(backfilled, bare, lag)
	finally:
		remove(schema)
		if made_database:
			with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
				admin.execute(f'drop database if exists "{DATABASE}" with (force)')


# -- the phases ------------------------------------------------------------------------------------
def bench_backfill(rule: str, chunk: int = replica.BACKFILL_CHUNK) -> dict:
	"""The first sync of the rule, in this process, timed from start to Done."""
	started = time.perf_counter()
	done = replica.backfill(rule, max_seconds=float("inf"), chunk=chunk)
	seconds = time.perf_counter() - started
	if done["status"] != "Done":
		raise RuntimeError(f"the backfill ended {done['status']}: {done['message']}")
	return {"rows": done["copied"], "seconds": seconds, "rate": done["copied"] / seconds}


def reset(rule: str, url: str, schema: str) -> None:
	"""Back to before the first sync: the tables dropped, the rule's backfill not started."""
	with psycopg.connect(url, autocommit=True) as conn:
		conn.execute(f'drop schema if exists "{schema}" cascade')
	frappe.db.set_value(
		"Sync Rule", rule, {"backfill_status": "Queued", "backfill_copied": 0, "backfill_cursor": None}
	)
	frappe.db.commit()


def bench_bare_copy(url: str, schema: str) -> dict:
	"""The same rows, written out to a file first (untimed), then ``COPY``-ed into an empty table of
	the same columns: what PostgreSQL itself takes, with nothing read from MariaDB."""
	with psycopg.connect(url, autocommit=True) as conn, tempfile.TemporaryDirectory() as folder:
		path = os.path.join(folder, "customers.copy")
		with open(path, "wb") as file:
			with conn.cursor().copy(f'copy "{schema}".customer to stdout') as copy:
				for block in copy:
					file.write(block)
		conn.execute(f'create table "{schema}".bare_copy (like "{schema}".customer including all)')
		started = time.perf_counter()
		with conn.cursor().copy(f'copy "{schema}".bare_copy from stdin') as copy, open(path, "rb") as file:
			while block := file.read(1 << 20):
				copy.write(block)
		seconds = time.perf_counter() - started
		rows = conn.execute(f'select count(*) from "{schema}".bare_copy').fetchone()[0]
	return {"rows": rows, "seconds": seconds, "rate": rows / seconds}


def bench_lag(url: str, schema: str, seconds: float, per_second: float) -> dict:
	"""Steady saves; a watcher thread polls PostgreSQL for the rows and notes when each appears."""
	get_queue("default").empty()
	committed: dict[str, float] = {}
	visible: dict[str, float] = {}
	stop = threading.Event()
	watcher = threading.Thread(target=watch, args=(url, schema, committed, visible, stop), daemon=True)
	worker = start_worker(burst=False)
	try:
		time.sleep(3)  # the worker is up
		watcher.start()
		started = time.monotonic()
		n = 0
		while time.monotonic() - started < seconds:
			due = started + n / per_second
			time.sleep(max(0.0, due - time.monotonic()))
			name = save_customer(f"lag {n}")
			committed[name] = time.monotonic()
			n += 1
		wait_for(lambda: len(visible) >= len(committed), 120)
	finally:
		stop.set()
		watcher.join(5)
		worker.terminate()
		worker.wait(30)
	lags = sorted(visible[n] - committed[n] for n in committed if n in visible)
	return {
		"saves": len(committed),
		"rate": len(committed) / seconds,
		"p50": statistics.median(lags),
		"p95": lags[int(0.95 * (len(lags) - 1))],
		"max": lags[-1],
		"pending_after": pending(CONNECTOR),
	}


def watch(url: str, schema: str, committed: dict, visible: dict, stop: threading.Event) -> None:
	with psycopg.connect(url, autocommit=True) as conn:
		while not stop.is_set():
			waiting = [n for n in list(committed) if n not in visible]
			if waiting:
				found = conn.execute(
					f'select name from "{schema}".customer where name = any(%s)', [waiting]
				).fetchall()
				now = time.monotonic()
				for (name,) in found:
					visible.setdefault(name, now)
			time.sleep(0.02)


def report(backfilled: dict, bare: dict, lag: dict | None) -> None:
	ratio = backfilled["rate"] / bare["rate"]
	print()
	print("analytics replica, PostgreSQL 127.0.0.1:5432")
	print(f"  bare COPY from a file        {bare['rate']:10.0f} rows/s  1.00x   ({bare['rows']} rows)")
	print(
		f"  backfill (MariaDB -> COPY)   {backfilled['rate']:10.0f} rows/s  {ratio:.2f}x   "
		f"({backfilled['rows']} rows, {backfilled['seconds']:.1f} s; the median of {backfilled['ratios']}; "
		f"target {BACKFILL_TARGET}x)"
	)
	if not lag:
		return
	print(
		f"  lag at {lag['rate']:.1f} saves/s, {lag['saves']} saves, 1 RQ worker: "
		f"p50 {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s ({lag['p95'] / LAG_TARGET_P95:.2f}x of the "
		f"{LAG_TARGET_P95:g} s target), max {lag['max']:.2f} s; events left pending {lag['pending_after']}"
	)


# -- the site's side ---------------------------------------------------------------------------------
def ensure_database() -> bool:
	with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
		if admin.execute("select 1 from pg_database where datname = %s", [DATABASE]).fetchone():
			return False
		admin.execute(f'create database "{DATABASE}"')
		return True


def seed_customers(count: int) -> None:
	"""Customers as rows (what the backfill reads); inserting documents one by one would take the
	benchmark's whole time."""
	now = now_datetime()
	fields = ["name", "creation", "modified", "owner", "modified_by", "docstatus", "idx"]
	fields += ["customer_name", "customer_type", "customer_group", "territory", "naming_series"]
	rows = (
		(
			f"{CUSTOMER_PREFIX}{n:06d}",
			now,
			now,
			"Administrator",
			"Administrator",
			0,
			0,
			f"{CUSTOMER_PREFIX}{n:06d}",
			"Company",
			"All Customer Groups",
			"All Territories",
			"CUST-.YYYY.-",
		)
		for n in range(count)
	)
	frappe.db.bulk_insert("Customer", fields, rows)
	frappe.db.commit()


def make_rule() -> str:
	rule = frappe.get_doc(
		{
			"doctype": "Sync Rule",
			"connector": CONNECTOR,
			"reference_doctype": "Customer",
			"event_after_insert": 1,
			"event_on_update": 1,
			"payload_mode": "Whole Document",
			"target_path": "",
		}
	).insert(ignore_permissions=True)
	clear_rules_cache()
	frappe.db.commit()
	queued = get_job(f"erp_connect:backfill:{rule.name}")  # the rule's first save queued one: we run it here
	if queued:
		queued.delete()
	return rule.name


def save_customer(label: str) -> str:
	doc = frappe.get_doc(
		{
			"doctype": "Customer",
			"customer_name": CUSTOMER_PREFIX + label,
			"customer_group": "All Customer Groups",
			"territory": "All Territories",
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return doc.name


def remove(schema: str) -> None:
	cleanup((CONNECTOR,))
	frappe.db.sql("delete from `tabCustomer` where customer_name like %s", [CUSTOMER_PREFIX + "%"])
	frappe.db.commit()
	with psycopg.connect(f"{SERVER}/{DATABASE}", autocommit=True) as conn:
		conn.execute(f'drop schema if exists "{schema}" cascade')
