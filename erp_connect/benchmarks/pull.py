"""Pull benchmark: a scheduled pull of N Customers from a paginated remote list, against the same
records written through erp_connect's own upsert API over HTTP, in the same run; then the cost of
a run that finds nothing changed.

	bench --site test.localhost execute erp_connect.benchmarks.pull.run
	bench --site test.localhost execute erp_connect.benchmarks.pull.run --kwargs "{'records': 1000}"

Writes Customers named "_Bench EC ..." and removes them at the end. Run it on a test site.
"""

import time

import frappe

from erp_connect.benchmarks.inbound import API_USER, CONNECTOR, PREFIX, make_connector, rate, upsert_batch
from erp_connect.benchmarks.inbound import cleanup as cleanup_inbound
from erp_connect.install import CONNECT_API_USER
from erp_connect.services.pull import runs
from erp_connect.testing.base import REMOTE_CUSTOMER_MAP, make_api_user, site_http
from erp_connect.testing.remote import RemoteSystem

PULL_CONNECTOR = PREFIX + "pull"
PAGE_SIZE = 200  # the same batch the upsert API gets per call


def run(records: int = 2000) -> None:
	cleanup()
	key, secret = make_api_user(API_USER, [CONNECT_API_USER, "Sales Master Manager"])
	make_connector()
	url, http = site_http(key, secret)
	remote = RemoteSystem().start()
	try:
		upserted = bench_upsert_api(url, http, records)
		rule = make_pull_rule(remote, records)
		pulled = timed_run(rule, "created", records)
		remote.requests.clear()
		quiet = timed_run(rule, "created", 0)
		quiet["requests"] = len(remote.received())
		report(records, upserted, pulled, quiet)
	finally:
		remote.stop()
		cleanup()


def bench_upsert_api(url, http, count: int) -> dict:
	started = time.perf_counter()
	for start in range(0, count, PAGE_SIZE):
		upsert_batch(url, http, range(start, min(start + PAGE_SIZE, count)), "api", "created")
	return rate(count, started)


def make_pull_rule(remote: RemoteSystem, count: int) -> str:
	remote.serve_list(
		"/customers",
		[
			{"id": f"p-{n}", "name": f"{PREFIX}pulled {n}", "updated_at": "2026-01-01T00:00:00Z"}
			for n in range(count)
		],
		style="cursor",
		max_page_size=PAGE_SIZE,
	)
	frappe.get_doc(
		{
			"doctype": "Connector",
			"connector_name": PULL_CONNECTOR,
			"connector_type": "REST API",
			"base_url": remote.url,
			"allow_private_network": 1,
			"api_user": API_USER,  # writes what is pulled
			"allowed_doctypes": [{"reference_doctype": "Customer", "can_create": 1, "can_update": 1}],
		}
	).insert(ignore_permissions=True)
	rule = frappe.get_doc(
		{
			"doctype": "Pull Rule",
			"connector": PULL_CONNECTOR,
			"reference_doctype": "Customer",
			"list_path": "/customers",
			"pagination_style": "Cursor Token",
			"next_path": "next_cursor",
			"page_size": PAGE_SIZE,
			"overlap_seconds": 0,
			"field_map": REMOTE_CUSTOMER_MAP,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return rule.name


def timed_run(rule: str, counted: str, expected: int) -> dict:
	started = time.perf_counter()
	run_name = runs.run(rule)
	seconds = time.perf_counter() - started
	done = frappe.get_doc("Sync Run", run_name)
	if done.get(counted) != expected or done.status != "Succeeded":
		raise AssertionError(f"expected {expected} {counted}, got {done.as_dict()}")
	return {"records": expected, "seconds": seconds, "rate": expected / seconds if expected else 0}


def cleanup() -> None:
	cleanup_inbound()
	frappe.db.delete("Sync Link", {"connector": PULL_CONNECTOR})
	runs = frappe.get_all("Sync Run", {"connector": PULL_CONNECTOR}, pluck="name")
	frappe.db.delete("Sync Run Error", {"parent": ("in", runs or [""])})
	frappe.db.delete("Sync Run", {"connector": PULL_CONNECTOR})
	rules = frappe.get_all("Pull Rule", {"connector": PULL_CONNECTOR}, pluck="name")
	frappe.db.delete("Sync Field Map", {"parent": ("in", rules or [""])})
	frappe.db.delete("Pull Rule", {"connector": PULL_CONNECTOR})
	frappe.db.delete("Connector Access", {"parent": PULL_CONNECTOR})
	frappe.db.delete("Connector", PULL_CONNECTOR)
	frappe.db.commit()


def report(records: int, upserted: dict, pulled: dict, quiet: dict) -> None:
	base = upserted["rate"]
	print()
	print(f"writing {records} Customers (records/s)")
	print(f"  erp_connect upsert API over HTTP, {PAGE_SIZE} per call  {base:8.1f}   1.00x")
	print(
		f"  scheduled pull, {PAGE_SIZE} per page                  {pulled['rate']:8.1f}   {pulled['rate'] / base:.2f}x"
	)
	print()
	print(
		f"a run that finds nothing changed: {quiet['requests']} request(s), {quiet['seconds'] * 1000:.0f} ms"
		f"  ({CONNECTOR} and {PULL_CONNECTOR} removed afterwards)"
	)
