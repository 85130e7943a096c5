"""Delivery against slow receivers: events/s with one RQ worker and with four, at 0, 100 ms, 1 s
and 3 s per request, next to the limit that latency sets (requests in flight ÷ latency, per
drain), and the duplicate sends the receiver saw (there must be none). Each phase drains a
backlog of distinct documents, bounded in count and time.

	bench --site test.localhost execute erp_connect.benchmarks.scale_out.run
	bench --site test.localhost execute erp_connect.benchmarks.scale_out.run --kwargs "{'latencies': (0.1,)}"
"""

import time

import frappe
import requests
from frappe.utils.background_jobs import get_queue

from erp_connect.benchmarks.push import (
	CONNECTOR,
	cleanup,
	make_connector,
	pending,
	seed_backlog,
	set_rule,
	start_receiver,
)
from erp_connect.services.push.delivery import DRAINS_PER_CONNECTOR
from erp_connect.services.push.wake import DRAIN
from erp_connect.testing.base import ready_workers, stop_workers

LATENCIES = (0, 0.1, 1.0, 3.0)
MAX_EVENTS = 6400  # a phase of 20 s even at 320 events/s (100 ms, 4 workers): ramp-up amortized
CPU_BOUND_RATE = 400  # events/s one worker reaches against a receiver that answers at once


def run(latencies: tuple = LATENCIES, in_flight: int = 8, seconds: float = 20) -> None:
	rows = []
	try:
		for latency in latencies:
			receiver, url = start_receiver(delay=latency)
			try:
				cleanup()
				make_connector(url)
				frappe.db.set_value(
					"Connector",
					CONNECTOR,
					{"max_in_flight": in_flight, "timeout_seconds": max(2, 2 * latency + 1)},
				)
				rule = set_rule(CONNECTOR, 1)
				for workers in (1, DRAINS_PER_CONNECTOR):
					rows.append(phase(url, rule, latency, workers, in_flight, seconds))
			finally:
				receiver.kill()
	finally:
		cleanup()
	report(rows, in_flight)


def phase(url: str, rule: str, latency: float, workers: int, in_flight: int, seconds: float) -> dict:
	limit = in_flight * workers / latency if latency else None
	count = int(min(MAX_EVENTS, max(4 * in_flight * workers, (limit or CPU_BOUND_RATE * workers) * seconds)))
	seed_backlog(CONNECTOR, rule, count)
	queue = get_queue("default")
	queue.empty()
	before = counts(url)
	processes = ready_workers(workers)
	try:
		started = time.perf_counter()
		frappe.enqueue(DRAIN, connector=CONNECTOR)
		frappe.db.commit()
		deadline = time.monotonic() + 10 * seconds + 60
		while pending(CONNECTOR) and time.monotonic() < deadline:
			time.sleep(0.1)
		elapsed = time.perf_counter() - started
	finally:
		stop_workers(processes)
	after = counts(url)
	sent, distinct = after[0] - before[0], after[1] - before[1]
	delivered = frappe.db.count("Sync Event", {"connector": CONNECTOR, "status": "Delivered"})
	frappe.db.delete("Sync Event", {"connector": CONNECTOR})
	frappe.db.commit()
	return {
		"latency": latency,
		"workers": workers,
		"events": count,
		"delivered": delivered,
		"rate": delivered / elapsed,
		"limit": limit,
		"duplicates": sent - distinct,
	}


def counts(url: str) -> tuple[int, int]:
	answer = requests.get(url + "/_count", timeout=5).json()
	return answer["requests"], answer["distinct_ids"]


def report(rows: list[dict], in_flight: int) -> None:
	print(f"\ndelivery against slow receivers, {in_flight} requests in flight per drain (events/s)")
	print("  latency  workers  events  delivered   events/s   limit   of limit  duplicate sends")
	one = {}
	for r in rows:
		share = f"{r['rate'] / r['limit']:.2f}x" if r["limit"] else "-"
		limit = f"{r['limit']:.0f}" if r["limit"] else "CPU"
		line = f"  {r['latency'] * 1000:>5.0f} ms  {r['workers']:>7}  {r['events']:>6}  {r['delivered']:>9}"
		line += f"  {r['rate']:>9.1f}  {limit:>6}  {share:>9}  {r['duplicates']:>15}"
		if r["workers"] == 1:
			one[r["latency"]] = r["rate"]
		else:
			line += f"   {r['rate'] / one[r['latency']]:.2f}x one worker"
		print(line)
