"""Push delivery benchmark: erp_connect against Frappe's own Webhook doctype, in the same run, to
the same receiver (a separate process on 127.0.0.1), with one RQ worker.

	bench --site test.localhost execute erp_connect.benchmarks.push.run
	bench --site test.localhost execute erp_connect.benchmarks.push.run --kwargs "{'events': 1000}"

It writes to the site (customers and events named "_Bench EC ...") and removes them at the end.
Run it on a test site only, with no other worker running.
"""

import json
import resource
import statistics
import subprocess
import sys
import time

import frappe
import requests
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_queue

from erp_connect.engine import outbound, signing
from erp_connect.services.common import sql
from erp_connect.services.push.outbox import EVENT_COLUMNS, clear_rules_cache
from erp_connect.services.push.wake import DRAIN
from erp_connect.testing.base import make_api_user, ready_workers, site_http, stop_workers

PREFIX = "_Bench EC "
CONNECTOR = PREFIX + "receiver"
API_USER = "ec-bench-push@example.com"
PAYLOAD_DATA = {"id": "CUST-00001", "name": "A Customer Name Ltd", "type": "Company", "group": "Commercial"}


def run(
	webhook_events: int = 60,
	events: int = 3000,
	batched_events: int = 30000,
	batch_size: int = 100,
	customers: int = 1000,
	api_customers: int = 400,
	memory_events: tuple = (10000, 100000),
	phases: tuple = ("save", "save_floor", "api_save", "delivery", "memory"),
) -> None:
	receiver, url = start_receiver()
	try:
		cleanup()
		connector = make_connector(url)
		results = {}
		# the save phase first: later phases delete tens of thousands of rows, and InnoDB's purge
		# of them would compete with the inserts being timed
		if "save" in phases:
			results["save"] = bench_save_overhead(connector, customers)
		if "save_floor" in phases:
			results["save_floor"] = bench_save_floor(connector, customers)
		if "api_save" in phases:
			results["api_save"] = bench_api_save_overhead(connector, api_customers)
		if "delivery" in phases:
			results["frappe_webhook"] = bench_frappe_webhook(url, webhook_events)
			results["unbatched"] = bench_drain(connector, events, batch_size=1)
			results["batched"] = bench_drain(connector, batched_events, batch_size=batch_size)
		if "memory" in phases:
			results["memory"] = [bench_memory(connector, n) for n in memory_events]
		report(results, batch_size)
	finally:
		cleanup()
		receiver.kill()


# -- the phases --------------------------------------------------------------------------------------
def bench_frappe_webhook(url: str, count: int) -> dict:
	"""Frappe's Webhook: one background job per event."""
	make_frappe_webhook(url)
	get_queue("default").empty()
	for n in range(count):
		make_customer(f"webhook {n}")
	before = received(url)
	workers = ready_workers(1)  # it may take a job or two before the clock starts: in the baseline's favour
	try:
		started = time.perf_counter()
		wait_for(lambda: received(url) - before >= count, 600)
		seconds = time.perf_counter() - started
	finally:
		stop_workers(workers)
	remove_frappe_webhooks()
	return {"events": count, "seconds": seconds, "rate": count / seconds}


def make_frappe_webhook(url: str) -> None:
	frappe.get_doc(
		{
			"doctype": "Webhook",
			"__newname": PREFIX + "webhook",  # Webhook is named by prompt
			"webhook_doctype": "Customer",
			"webhook_docevent": "after_insert",
			"request_url": url + "/frappe-webhook",
			"request_method": "POST",
			"request_structure": "JSON",
			"webhook_json": '{"id": "{{ doc.name }}", "name": "{{ doc.customer_name }}"}',
			"enabled": 1,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()


def remove_frappe_webhooks() -> None:
	"""And Frappe's cached list of them, which Webhook clears on save but not on delete: left
	behind, every later Customer save queued a job for a webhook that no longer exists."""
	for name in frappe.get_all("Webhook", {"name": ("like", PREFIX + "%")}, pluck="name"):
		frappe.delete_doc("Webhook", name, ignore_permissions=True, force=True)
	frappe.db.commit()
	frappe.cache.delete_value("webhooks")


def bench_drain(connector: str, count: int, batch_size: int, target: str = "/hooks") -> dict:
	"""erp_connect: a backlog of ``count`` events drained by one worker (started before timing)."""
	rule = set_rule(connector, batch_size, target=target)
	seed_backlog(connector, rule, count)
	get_queue("default").empty()
	workers = ready_workers(1)
	try:
		started = time.perf_counter()
		frappe.enqueue(DRAIN, connector=connector)
		frappe.db.commit()
		wait_for(lambda: pending(connector) == 0, 1200)
		seconds = time.perf_counter() - started
	finally:
		stop_workers(workers)
	delivered = frappe.db.count("Sync Event", {"connector": connector, "status": "Delivered"})
	clear_events(connector)
	return {"events": count, "delivered": delivered, "seconds": seconds, "rate": count / seconds}


def bench_save_overhead(connector: str, count: int, block: int = 20, insert=None) -> dict:
	"""Insert Customers with no rule and with three rules (3 events a save). ``insert`` saves one
	Customer (default: in this process, one transaction each)."""
	insert = insert or make_customer
	frappe.db.set_value("Sync Rule", {"connector": connector}, "enabled", 0)
	rules = [set_rule(connector, 1, event) for event in ("after_insert", "on_update", "after_insert")]

	def rules_enabled(enabled: bool) -> None:
		for rule in rules:
			frappe.db.set_value("Sync Rule", rule, "enabled", int(enabled))
		clear_rules_cache()
		frappe.db.commit()

	return interleaved(
		connector,
		count,
		block,
		none=insert,
		other=insert,
		before={"none": lambda: rules_enabled(False), "other": lambda: rules_enabled(True)},
	)


def bench_save_floor(connector: str, count: int, block: int = 20) -> dict:
	"""The least any outbox written in the document's transaction costs (guarantee 1): a save that
	also INSERTs one small row into the outbox table before its commit, nothing rendered, no rule,
	no wake-up - against the same save without it."""
	frappe.db.set_value("Sync Rule", {"connector": connector}, "enabled", 0)
	frappe.db.commit()
	clear_rules_cache()
	rule = frappe.db.get_value("Sync Rule", {"connector": connector})

	def with_one_row(label: str) -> None:
		doc = frappe.get_doc({"doctype": "Customer", **customer_fields(label)}).insert(
			ignore_permissions=True
		)
		now = now_datetime()
		event_id = outbound.new_event_id()
		row = (event_id, now, now, "Administrator", "Administrator", event_id, "Dry Run", connector, rule)
		row += ("Customer", doc.name, "after_insert", 1, 0, now, '{"id": 1}', None, None)
		sql.insert_rows("Sync Event", EVENT_COLUMNS, [row])
		frappe.db.commit()

	return interleaved(connector, count, block, none=make_customer, other=with_one_row)


def interleaved(connector: str, count: int, block: int, none, other, before=None) -> dict:
	"""Save ``count`` Customers each way (``none``: the plain save; ``other``: the save measured
	against it), interleaved in small blocks whose order alternates (so slow drifts of the machine
	hit both alike), each block after two untimed warm-up saves. Reports the overall rates and the
	median of the per-block-pair ratios."""
	sides = {"none": none, "other": other}
	timings = {"none": 0.0, "other": 0.0}
	ratios = []
	for n in range(0, count, block):
		order = ("none", "other") if (n // block) % 2 == 0 else ("other", "none")
		pair = {}
		for side in order:
			if before:
				before[side]()
			for i in range(2):
				sides[side](f"{side} warm-up {n} {i}")
			started = time.perf_counter()
			for i in range(n, min(n + block, count)):
				sides[side](f"{side} {i}")
			pair[side] = time.perf_counter() - started
			timings[side] += pair[side]
		ratios.append(pair["none"] / pair["other"])
	events = frappe.db.count("Sync Event", {"connector": connector})
	get_queue("default").empty()
	clear_events(connector)
	return {
		"customers": count,
		"events": events,
		"none_rate": count / timings["none"],
		"other_rate": count / timings["other"],
		"median_ratio": statistics.median(ratios),
		"block": block,
	}


def bench_api_save_overhead(connector: str, count: int) -> dict:
	"""The same comparison as Desk users and API clients see it: each Customer one
	POST /api/resource/Customer to a gunicorn of this site (2 workers), with a real API key."""
	key, secret = make_api_user(API_USER, ["Sales Master Manager"])
	url, http = site_http(key, secret)

	def post(label: str) -> None:
		http.post(f"{url}/api/resource/Customer", json=customer_fields(label)).raise_for_status()

	return bench_save_overhead(connector, count, insert=post)


def bench_memory(connector: str, count: int) -> dict:
	"""Drain a backlog in a fresh process and report that process's peak RSS."""
	rule = set_rule(connector, 100)
	seed_backlog(connector, rule, count)
	frappe.db.commit()
	output = subprocess.run(
		[
			sys.executable,
			"-m",
			"frappe.utils.bench_helper",
			"frappe",
			"--site",
			frappe.local.site,
			"execute",
			"erp_connect.benchmarks.push.drain_and_measure",
			"--kwargs",
			repr({"connector": connector}),
		],
		cwd=frappe.local.sites_path,
		capture_output=True,
		text=True,
		check=True,
	).stdout
	measured = json.loads(output.strip().splitlines()[-1])
	clear_events(connector)
	return {"events": count, **measured}


def drain_and_measure(connector: str) -> dict:
	"""Run in a child process by bench_memory: drain everything, return peak RSS (MB)."""
	from erp_connect.services.push.delivery import drain

	started = time.perf_counter()
	rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
	while pending(connector):
		drain(connector, max_seconds=3600)
	return {
		"seconds": round(time.perf_counter() - started, 1),
		"rss_start_mb": round(rss_before, 1),
		"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
	}


# -- helpers --------------------------------------------------------------------------------------------
def start_receiver(delay: float = 0) -> tuple[subprocess.Popen, str]:
	process = subprocess.Popen(
		[sys.executable, "-m", "erp_connect.testing.remote", "--delay", str(delay)],
		stdout=subprocess.PIPE,
		text=True,
	)
	url = process.stdout.readline().strip()
	return process, url


def received(url: str) -> int:
	return requests.get(url + "/_count", timeout=5).json()["requests"]


def make_connector(url: str, name: str = CONNECTOR, **fields) -> str:
	frappe.get_doc(
		{
			"doctype": "Connector",
			"connector_name": name,
			"base_url": url,
			"allow_private_network": 1,
			"signing_secret": signing.generate_secret(),
			**fields,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return name


def set_rule(connector: str, batch_size: int, event: str = "after_insert", target: str = "/hooks") -> str:
	rule = frappe.get_doc(
		{
			"doctype": "Sync Rule",
			"connector": connector,
			"reference_doctype": "Customer",
			f"event_{event}": 1,
			"target_path": target,
			"batch_size": batch_size,
			"field_map": [
				{"erpnext_field": "name", "external_path": "id"},
				{"erpnext_field": "customer_name", "external_path": "name"},
				{"erpnext_field": "customer_type", "external_path": "type"},
				{"erpnext_field": "customer_group", "external_path": "group"},
			],
		}
	).insert(ignore_permissions=True)
	frappe.db.sql(
		"update `tabSync Rule` set enabled=0 where connector=%s and name!=%s", (connector, rule.name)
	)
	clear_rules_cache()
	frappe.db.commit()
	return rule.name


def seed_backlog(connector: str, rule: str, count: int) -> None:
	"""Insert ``count`` pending events for as many documents, as the outbox would have written them."""
	now = now_datetime()
	fields = ["name", "creation", "modified", "owner", "modified_by", "event_id", "status", "connector"]
	fields += ["sync_rule", "reference_doctype", "reference_name", "doc_event", "seq", "attempts"]
	fields += ["next_attempt_at", "payload"]

	def rows():
		for n in range(count):
			event_id = outbound.new_event_id()
			name = f"{PREFIX}doc {n}"
			ref = outbound.EventRef(event_id, "Customer", name, "after_insert", 1, now.isoformat())
			payload = outbound.envelope(ref, PAYLOAD_DATA)
			standard = (event_id, now, now, "Administrator", "Administrator")
			yield (
				*standard,
				event_id,
				"Pending",
				connector,
				rule,
				"Customer",
				name,
				"after_insert",
				1,
				0,
				now,
				payload,
			)

	frappe.db.bulk_insert("Sync Event", fields, rows())  # it inserts in chunks as it reads
	frappe.db.commit()


def pending(connector: str) -> int:
	frappe.db.commit()  # a fresh snapshot
	return frappe.db.count(
		"Sync Event", {"connector": connector, "status": ("in", ("Pending", "Sending", "Retrying"))}
	)


def customer_fields(label: str) -> dict:
	return {
		"customer_name": f"{PREFIX}{label}",
		"customer_group": "All Customer Groups",
		"territory": "All Territories",
	}


def make_customer(label: str) -> None:
	frappe.get_doc({"doctype": "Customer", **customer_fields(label)}).insert(ignore_permissions=True)
	frappe.db.commit()


def wait_for(condition, timeout: float) -> None:
	deadline = time.monotonic() + timeout
	while not condition():
		if time.monotonic() > deadline:
			raise TimeoutError("benchmark phase did not finish in time")
		time.sleep(0.05)


def clear_events(connector: str) -> None:
	frappe.db.delete("Sync Event", {"connector": connector})
	frappe.db.commit()


def cleanup(connectors: tuple = (CONNECTOR,)) -> None:
	frappe.db.rollback()
	for connector in connectors:
		frappe.db.delete("Sync Event", {"connector": connector})
		rules = frappe.get_all("Sync Rule", {"connector": connector}, pluck="name")
		frappe.db.delete("Sync Field Map", {"parent": ("in", rules or [""])})
		frappe.db.delete("Sync Rule", {"connector": connector})
		frappe.db.delete("Connector", connector)
	remove_frappe_webhooks()
	frappe.db.delete("Customer", {"name": ("like", PREFIX + "%")})
	frappe.db.commit()
	clear_rules_cache()


def report(r: dict, batch_size: int) -> None:
	if "frappe_webhook" in r:
		base = r["frappe_webhook"]["rate"]
		print()
		print("push delivery, one RQ worker, same receiver (events/s)")
		print(
			f"  Frappe Webhook doctype          {base:9.1f}   1.0x   ({r['frappe_webhook']['events']} events)"
		)
		for key, label in (
			("unbatched", "erp_connect, unbatched"),
			("batched", f"erp_connect, {batch_size}/request"),
		):
			x = r[key]
			print(f"  {label:<31} {x['rate']:9.1f} {x['rate'] / base:6.0f}x   ({x['events']} events)")
	for key, how, label in (
		("save", "in one process", "three rules"),
		("save_floor", "in one process, the floor (one small outbox row, nothing else)", "one row   "),
		("api_save", "through POST /api/resource", "three rules"),
	):
		if key in r:
			s = r[key]
			print()
			print(f"save overhead {how}: {s['customers']} Customers each way ({s['events']} events written)")
			print(f"  no rules       {s['none_rate']:7.1f} inserts/s")
			print(f"  {label}    {s['other_rate']:7.1f} inserts/s   {s['other_rate'] / s['none_rate']:.2f}x")
			pairs = -(-s["customers"] // s["block"])
			print(f"  median of {pairs} interleaved block pairs: {s['median_ratio']:.2f}x")
	if "memory" in r:
		print()
		print("memory: draining a backlog in a fresh process")
		for m in r["memory"]:
			print(
				f"  {m['events']:>7} events  {m['seconds']:6.1f} s  RSS at start {m['rss_start_mb']:6.1f} MB"
				f"  peak {m['peak_rss_mb']:6.1f} MB"
			)
