"""Inbound API benchmark: erp_connect's upsert against Frappe's own REST API, in the same run,
through the same gunicorn (2 workers) on 127.0.0.1, with real API keys.

	bench --site test.localhost execute erp_connect.benchmarks.inbound.run
	bench --site test.localhost execute erp_connect.benchmarks.inbound.run --kwargs "{'records': 400}"

Writes Customers named "_Bench EC ..." and removes them at the end. Run it on a test site.
"""

import json
import resource
import subprocess
import sys
import time

import frappe

from erp_connect.engine.cursor import Cursor
from erp_connect.install import CONNECT_API_USER
from erp_connect.testing.base import make_api_user, site_http

PREFIX = "_Bench EC "
CONNECTOR = PREFIX + "inbound"
API_USER = "ec-bench-api@example.com"
BATCH = 200  # frappe.client.insert_many takes at most 200 documents per call


def run(
	one_by_one: int = 300,
	records: int = 1000,
	feed_pages: int = 20,
	page_size: int = 100,
	import_sizes: tuple = (2000, 10000),
) -> None:
	cleanup()
	key, secret = make_api_user(API_USER, [CONNECT_API_USER, "Sales Master Manager"])
	make_connector()
	url, http = site_http(key, secret)
	try:
		results = {"resource": bench_resource_one_by_one(url, http, one_by_one)}
		results["insert_many"], results["upsert"] = bench_batches_interleaved(url, http, records)
		results["replay"] = bench_upsert(url, http, records, "new", expect="unchanged")
		results["feed"] = bench_feed(url, http, feed_pages, page_size)
		results["imports"] = [bench_import_memory(url, http, n) for n in import_sizes]
		report(results)
	finally:
		cleanup()


def customer(label: str, n: int) -> dict:
	return {
		"customer_name": f"{PREFIX}{label} {n}",
		"customer_group": "All Customer Groups",
		"territory": "All Territories",
	}


def bench_resource_one_by_one(url, http, count: int) -> dict:
	started = time.perf_counter()
	for n in range(count):
		r = http.post(f"{url}/api/resource/Customer", json=customer("resource", n))
		r.raise_for_status()
	return rate(count, started)


def bench_batches_interleaved(url, http, count: int) -> tuple[dict, dict]:
	"""insert_many and upsert batch by batch, alternating which goes first, so that the machine's
	drift (a growing table, background purge) weighs on both alike."""
	spent = {"insert_many": 0.0, "upsert": 0.0}
	for start in range(0, count, BATCH):
		numbers = range(start, min(start + BATCH, count))
		order = ("insert_many", "upsert") if (start // BATCH) % 2 == 0 else ("upsert", "insert_many")
		for kind in order:
			started = time.perf_counter()
			if kind == "insert_many":
				insert_many_batch(url, http, numbers)
			else:
				upsert_batch(url, http, numbers, "new", "created")
			spent[kind] += time.perf_counter() - started
	return tuple(
		{"records": count, "seconds": spent[k], "rate": count / spent[k]} for k in ("insert_many", "upsert")
	)


def insert_many_batch(url, http, numbers) -> None:
	docs = [{"doctype": "Customer", **customer("many", n)} for n in numbers]
	http.post(f"{url}/api/method/frappe.client.insert_many", json={"docs": docs}).raise_for_status()


def upsert_batch(url, http, numbers, label: str, expect: str) -> None:
	batch = [{"id": f"{label}-{n}", **customer(label, n)} for n in numbers]
	r = http.post(
		f"{url}/api/method/erp_connect.api.v1.upsert",
		json={"connector": CONNECTOR, "doctype": "Customer", "records": batch},
	)
	r.raise_for_status()
	message = r.json()["message"]
	if message[expect] != len(batch):
		raise AssertionError(f"expected {len(batch)} {expect}, got {message}")


def bench_upsert(url, http, count: int, label: str, expect: str = "created") -> dict:
	started = time.perf_counter()
	for start in range(0, count, BATCH):
		upsert_batch(url, http, range(start, min(start + BATCH, count)), label, expect)
	return rate(count, started)


def bench_feed(url, http, pages: int, size: int) -> dict:
	"""Time the first and the last of ``pages`` pages: our keyset cursor vs limit_start paging."""
	ours, cursor = [], None
	for _ in range(pages):
		started = time.perf_counter()
		r = http.get(
			f"{url}/api/method/erp_connect.api.v1.changes",
			params={"connector": CONNECTOR, "doctype": "Customer", "limit": size, "cursor": cursor},
		)
		r.raise_for_status()
		cursor = r.json()["message"]["cursor"]
		ours.append(time.perf_counter() - started)
	theirs = []
	for page in range(pages):
		started = time.perf_counter()
		r = http.get(
			f"{url}/api/resource/Customer",
			params={
				"fields": '["*"]',
				"order_by": "modified asc",
				"limit_start": page * size,
				"limit_page_length": size,
			},
		)
		r.raise_for_status()
		theirs.append(time.perf_counter() - started)
	return {"pages": pages, "size": size, "ours": (ours[0], ours[-1]), "resource": (theirs[0], theirs[-1])}


def bench_import_memory(url, http, count: int) -> dict:
	"""Start an import over HTTP, then run it in a fresh process and report that process's peak RSS."""
	batch = [{"id": f"imp{count}-{n}", **customer(f"import {count}", n)} for n in range(count)]
	r = http.post(
		f"{url}/api/method/erp_connect.api.v1.start_import",
		json={"connector": CONNECTOR, "doctype": "Customer", "records": batch},
	)
	r.raise_for_status()
	import_id = r.json()["message"]["import"]
	frappe.db.commit()
	bench = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", frappe.local.site]
	measure = [
		"execute",
		"erp_connect.benchmarks.inbound.run_import_and_measure",
		"--kwargs",
		repr({"name": import_id}),
	]
	output = subprocess.run(
		[*bench, *measure],
		cwd=frappe.local.sites_path,
		capture_output=True,
		text=True,
		check=True,
	).stdout
	return {"records": count, **json.loads(output.strip().splitlines()[-1])}


def run_import_and_measure(name: str) -> dict:
	"""Run in a child process by bench_import_memory."""
	from erp_connect.services.inbound import imports

	started = time.perf_counter()
	rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
	imports.run(name)
	status = imports.status(frappe.get_doc("Sync Import", name))
	return {
		"seconds": round(time.perf_counter() - started, 1),
		"created": status["created"],
		"rss_start_mb": round(rss_start, 1),
		"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
	}


def feed_at_scale(count: int = 50000, size: int = 100) -> None:
	"""Read ``count`` changed Customers through the feed, every page, and compare its first and last
	page with /api/resource paging by limit_start (first and last page).

		bench --site test.localhost execute erp_connect.benchmarks.inbound.feed_at_scale
	"""
	cleanup()
	key, secret = make_api_user(API_USER, [CONNECT_API_USER, "Sales Master Manager"])
	make_connector()
	seed_customers(count)
	url, http = site_http(key, secret)
	try:
		start = Cursor(modified="2098-12-31 23:59:59", deleted_at="2098-12-31 23:59:59").encode()
		# one untimed call of each first: the gunicorn workers load their code on the first request
		http.get(
			f"{url}/api/method/erp_connect.api.v1.status", params={"connector": CONNECTOR}
		).raise_for_status()
		http.get(f"{url}/api/resource/Customer", params={"limit_page_length": 1}).raise_for_status()
		times, cursor, seen = [], start, 0
		while True:
			started = time.perf_counter()
			r = http.get(
				f"{url}/api/method/erp_connect.api.v1.changes",
				params={"connector": CONNECTOR, "doctype": "Customer", "limit": size, "cursor": cursor},
			)
			r.raise_for_status()
			page = r.json()["message"]
			times.append(time.perf_counter() - started)
			seen += len(page["records"])
			cursor = page["cursor"]
			if not page["has_more"]:
				break
		theirs = []
		total = frappe.db.count("Customer")
		for offset in (0, total - size):
			started = time.perf_counter()
			http.get(
				f"{url}/api/resource/Customer",
				params={
					"fields": '["*"]',
					"order_by": "modified asc",
					"limit_start": offset,
					"limit_page_length": size,
				},
			).raise_for_status()
			theirs.append(time.perf_counter() - started)
		print()
		print(f"change feed over {seen} records in {len(times)} pages of {size} (ms)")
		print(
			f"  erp_connect changes      first {times[0] * 1000:7.1f}   last {times[-1] * 1000:7.1f}   last/first {times[-1] / times[0]:.2f}"
		)
		print(
			f"  /api/resource limit_start first {theirs[0] * 1000:7.1f}   last {theirs[1] * 1000:7.1f}   last/first {theirs[1] / theirs[0]:.2f}"
		)
	finally:
		cleanup()


def seed_customers(count: int) -> None:
	"""Plain Customer rows, inserted in bulk (the feed reads rows; it does not care how they came)."""
	fields = ["name", "customer_name", "customer_type", "customer_group", "territory", "creation", "modified"]
	fields += ["owner", "modified_by"]

	def rows():
		for n in range(count):
			stamp = f"2099-01-01 00:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n % 100:06d}"  # ties and order
			name = f"{PREFIX}feed {n:06d}"
			admin = "Administrator"
			yield (
				name,
				name,
				"Company",
				"All Customer Groups",
				"All Territories",
				stamp,
				stamp,
				admin,
				admin,
			)

	frappe.db.bulk_insert("Customer", fields, rows())  # it inserts in chunks as it reads
	frappe.db.commit()


def rate(count: int, started: float) -> dict:
	seconds = time.perf_counter() - started
	return {"records": count, "seconds": seconds, "rate": count / seconds}


def make_connector() -> None:
	frappe.get_doc(
		{
			"doctype": "Connector",
			"connector_name": CONNECTOR,
			"base_url": "http://127.0.0.1:9",
			"allow_private_network": 1,
			"api_user": API_USER,
			"rate_limit_per_minute": 0,
			"allowed_doctypes": [
				{"reference_doctype": "Customer", "can_create": 1, "can_update": 1, "can_read": 1}
			],
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()


def cleanup() -> None:
	frappe.db.rollback()
	frappe.db.delete("Sync Link", {"connector": CONNECTOR})
	frappe.db.delete("Connector Access", {"parent": CONNECTOR})
	frappe.db.delete("Connector", CONNECTOR)
	frappe.db.delete("Customer", {"name": ("like", PREFIX + "%")})
	for name in frappe.get_all("Sync Import", {"connector": CONNECTOR}, pluck="name"):
		frappe.delete_doc("Sync Import", name, force=True, ignore_permissions=True)
	frappe.db.commit()


def report(r: dict) -> None:
	base, many = r["resource"]["rate"], r["insert_many"]["rate"]
	print()
	print("inbound writes, Customers, same gunicorn (records/s)")
	print(
		f"  POST /api/resource/Customer, one at a time  {base:8.1f}   1.0x   ({r['resource']['records']} records)"
	)
	print(
		f"  frappe.client.insert_many, {BATCH} per call    {many:8.1f}  {many / base:5.1f}x   (interleaved with upsert)"
	)
	for key, label in (
		("upsert", f"erp_connect upsert, {BATCH} per call"),
		("replay", "erp_connect upsert, replayed batch"),
	):
		x = r[key]["rate"]
		print(f"  {label:<42} {x:8.1f}  {x / base:5.1f}x   ({x / many:.2f}x insert_many)")
	f = r["feed"]
	print()
	print(f"reading {f['pages']} pages of {f['size']} (first page / last page, ms)")
	print(
		f"  erp_connect changes (keyset)    {f['ours'][0] * 1000:7.1f} / {f['ours'][1] * 1000:7.1f}   last/first {f['ours'][1] / f['ours'][0]:.2f}"
	)
	print(
		f"  /api/resource limit_start       {f['resource'][0] * 1000:7.1f} / {f['resource'][1] * 1000:7.1f}   last/first {f['resource'][1] / f['resource'][0]:.2f}"
	)
	print()
	print("background import, run in a fresh process")
	for m in r["imports"]:
		print(
			f"  {m['records']:>6} records  {m['created']:>6} created  {m['seconds']:6.1f} s"
			f"  RSS at start {m['rss_start_mb']:6.1f} MB  peak {m['peak_rss_mb']:6.1f} MB"
		)
