"""The harness: a randomized fault-injection run of push delivery, the change feed and inbound
upserts against the guarantees of DESIGN.md, then a checker of what actually happened.

For a bounded time it drives, from one seed (``random.Random(seed)``):

- saves of Customers under a push rule: quick ones in this process, and long transactions held
  open for seconds in saver subprocesses (their own database connections), so commits land out of
  ``modified`` order; bursts of new documents;
- receiver behaviours of the fake remote (testing/remote.py), changed every phase: latency
  0-3 s around a 2 s client timeout, 500, 429 with Retry-After, connection resets after the body
  was read, hangs past the client timeout, answers that drip a byte at a time for longer than the
  drain's lease; from some point on 410, on a rule of its own connector (410 disables the rule);
- real RQ workers (long-running, several at once) killed with SIGKILL at random points and new
  ones started; extra drains queued as other machines' sweepers would; sweeps;
- this site's Redis keys deleted (only keys with the site's prefix, and only this site's queued
  jobs: the cache and queue databases may be shared with other sites and benches, so FLUSHDB is
  never used) and database connections of workers killed (``KILL CONNECTION``);
- the change feed read over HTTP by an API user, and upsert calls with replays.

Then it stops the faults, lets the system settle (healthy receiver, workers, sweeps, and the
clock of retries moved forward: waiting five minutes for the second retry is not a test), and
checks the invariants (``INVARIANTS``). It prints its seed first, so a failure can be replayed:

	ERP_CONNECT_HARNESS_SEED=N ERP_CONNECT_HARNESS_SECONDS=S ... run-tests --module erp_connect.tests.test_harness

The soak mode is the same run for longer:

	bench --site SITE execute erp_connect.testing.harness.soak --kwargs "{'minutes': 10, 'seed': 7}"
"""

import itertools
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import frappe
import psutil
import requests
from frappe.utils import add_to_date, get_datetime, now_datetime

from erp_connect.engine.cursor import Cursor
from erp_connect.install import CONNECT_API_USER
from erp_connect.services.common.status import DEAD, DELIVERED, RETRYING, UNFINISHED
from erp_connect.services.push import delivery
from erp_connect.services.push import wake as waking
from erp_connect.services.push.outbox import clear_rules_cache
from erp_connect.testing.base import TEST_PREFIX, kill_worker, make_api_user, site_http, start_worker
from erp_connect.testing.inbound import API_USER
from erp_connect.testing.remote import RemoteSystem, Reply

SECONDS_ENV = "ERP_CONNECT_HARNESS_SECONDS"
SEED_ENV = "ERP_CONNECT_HARNESS_SEED"
DEFAULT_SECONDS = 120  # the fault schedule; setting up, settling and checking add about a minute
SETTLE_SECONDS = 120  # at most, after the faults stop
CLIENT_TIMEOUT = 2  # the connector's timeout: latencies of 0-3 s fall on both sides of it
MAX_WORKERS = 3
SAVERS = 2
HANG_SECONDS = 8  # a hang: well past the client timeout, ended early when the client leaves
LEASE_SECONDS = 3 * CLIENT_TIMEOUT + 5  # what the drain claims events for (delivery.Drainer)
DRIP_SECONDS = LEASE_SECONDS + 4  # an answer that drips for longer than the lease, a byte at a time
# receiver behaviours under which no crash is injected (see schedule), and that come early
UNCRASHED = ("slow", "trickle")
UNCRASHED_PHASE_SECONDS = LEASE_SECONDS + 10
NAME = TEST_PREFIX + "H "  # every record the harness makes starts with this

CUSTOMER_MAP = [("name", "id"), ("customer_name", "name"), ("customer_type", "type")]
INBOUND_MAP = [
	("customer_name", "name", "None", None, 1),
	("customer_type", "type", "Value Map", '{"company": "Company", "person": "Individual"}'),
	("customer_group", "group", "Constant", "All Customer Groups"),
	("territory", "territory", "Constant", "All Territories"),
]

INVARIANTS = {
	"saves have events": "every committed save has its outbox events (no lost events)",
	"delivered or dead": "every committed event is delivered at least once, or Dead with a reason",
	"never in flight twice": "no event id is in flight twice at once (no send under an expired lease)",
	"never multiplied": "an event the receiver acknowledged is sent again only after a crash"
	" (a worker or its database connection killed) since: a slow receiver never multiplies delivery",
	"per-document order": "per document, the first deliveries of its events come in seq order",
	"feed misses nothing": "every committed change is seen by the change feed at least once",
	"inbound written once": "replayed upserts write each external id once, and never answer 5xx",
	"410 disables the rule": "a 410 disables its rule with a reason and keeps the rule's events",
}

# receiver behaviours, one per phase: (name, choices of (weight, reply maker))
MOODS = {
	"healthy": [(1, lambda r: Reply(200, delay=r.uniform(0, 0.1)))],
	"slow": [(1, lambda r: Reply(200, delay=r.uniform(0, 3)))],  # around the 2 s timeout
	"near timeout": [(1, lambda r: Reply(200, delay=r.uniform(1.5, 2.1)))],
	"flaky": [(7, lambda r: Reply(200, delay=r.uniform(0, 0.5))), (3, lambda r: Reply(500))],
	"throttled": [
		(8, lambda r: Reply(200, delay=r.uniform(0, 0.3))),
		(2, lambda r: Reply(429, headers={"Retry-After": str(r.randint(1, 3))})),
	],
	"resets": [(8, lambda r: Reply(200, delay=r.uniform(0, 0.3))), (2, lambda r: Reply(reset=True))],
	"hangs": [
		(8, lambda r: Reply(200, delay=r.uniform(0, 0.5))),
		(2, lambda r: Reply(200, delay=HANG_SECONDS)),
	],
	# never silent for as long as the client's read timeout, slower in all than the lease
	"trickle": [(1, lambda r: Reply(200, {"ok": True}, drip_seconds=DRIP_SECONDS, drip_every=1.5))],
}


def seed_from_env() -> int:
	value = os.environ.get(SEED_ENV)
	return int(value) if value else int(time.time() * 1000) % 1_000_000


def seconds_from_env(default: float = DEFAULT_SECONDS) -> float:
	return float(os.environ.get(SECONDS_ENV) or default)


@dataclass
class Save:
	name: str
	modified: str
	by: str  # "main" or "saver N"
	held: float = 0.0  # seconds the transaction stayed open after the save


@dataclass
class Findings:
	seed: int
	seconds: float
	violations: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in INVARIANTS})
	stats: Counter = field(default_factory=Counter)

	def broken(self) -> list[str]:
		return [k for k, v in self.violations.items() if v]

	def describe(self, invariant: str | None = None, examples: int = 5) -> str:
		keys = [invariant] if invariant else list(INVARIANTS)
		lines = [f"harness seed={self.seed} seconds={self.seconds:g} (replay: {SEED_ENV}={self.seed})"]
		for key in keys:
			found = self.violations[key]
			state = f"BROKEN ({len(found)})" if found else "holds"
			lines.append(f"  {key}: {state} - {INVARIANTS[key]}")
			lines.extend(f"      e.g. {example}" for example in found[:examples])
		lines.append("  stats: " + ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())))
		return "\n".join(lines)


class Harness:
	def __init__(self, seed: int, seconds: float, log=print):
		self.seed = seed
		self.seconds = seconds
		self.rng = random.Random(seed)
		self.reply_rng = random.Random(seed + 1)  # used by the remote's threads, under a lock
		self.reply_lock = threading.Lock()
		self.log = log
		self.findings = Findings(seed, seconds)
		self.stats = self.findings.stats
		self.saves: list[Save] = []
		self.committed: list[str] = []  # customers committed so far (any may be updated)
		self.held: set[str] = set()  # customers inside a saver's open transaction
		self.workers: list[subprocess.Popen] = []
		self.crashes: list[float] = []  # when a worker or a worker's database connection was killed
		self.savers: list[Saver] = []
		self.stop_reading = threading.Event()
		self.feed_seen: dict[str, str] = {}  # customer -> greatest modified the feed returned
		self.feed_lock = threading.Lock()
		self.inbound_calls: list[tuple[str, int, str]] = []  # (external ids, status, excerpt)
		self.inbound_ids: set[str] = set()
		self.http_pool = ThreadPoolExecutor(6)
		self.mood = "healthy"
		self.timeline: list[tuple[float, str]] = []  # (time.time(), receiver mood from then on)
		self.counter = 0
		self.gone_at = 0.0  # when the /gone target starts answering 410 (monotonic; 0: done)

	# -- the whole run --------------------------------------------------------------------------
	def run(self) -> Findings:
		self.log(
			f"erp_connect harness: seed={self.seed} seconds={self.seconds:g} (replay with {SEED_ENV}={self.seed})"
		)
		started = time.monotonic()
		try:
			self.set_up()
			self.schedule(time.monotonic() + self.seconds)
			self.settle(time.monotonic() + SETTLE_SECONDS)
			self.check()
		finally:
			self.tear_down()
		self.stats["run seconds"] = round(time.monotonic() - started)
		self.log(self.findings.describe())
		return self.findings

	def set_up(self) -> None:
		from erp_connect.testing.cleanup import delete_test_data

		delete_test_data()
		self.remote = RemoteSystem().start()
		tag = frappe.generate_hash(length=6)
		self.main = self.connector(f"{NAME}main {tag}")
		self.main_rule = self.rule(self.main, ("after_insert", "on_update"), "/hooks")
		self.gone = self.connector(f"{NAME}gone {tag}")
		self.gone_rule = self.rule(self.gone, ("after_insert",), "/gone")
		self.key, self.secret = make_api_user(
			API_USER, [CONNECT_API_USER, "Sales Master Manager", "Sales User"]
		)
		self.api = self.connector(
			f"{NAME}api {tag}",
			api_user=API_USER,
			base_url="http://127.0.0.1:9",
			allowed_doctypes=[
				{"reference_doctype": "Customer", "can_create": 1, "can_update": 1, "can_read": 1}
			],
		)
		self.rule(self.api, (), None, direction="Inbound", field_map=INBOUND_MAP)
		for name in (self.main, self.gone):
			frappe.cache.delete_value(delivery._backoff_key(name))
		frappe.db.commit()
		clear_rules_cache()
		self.url, self.http = site_http(self.key, self.secret)
		self.remote.set_responder("/hooks", self.reply)
		self.remote.set_responder("/gone", lambda: Reply(200))
		start = str(add_to_date(now_datetime(), seconds=-1))
		self.feed_cursor = Cursor(start, "", start, "").encode()
		self.reader = threading.Thread(
			target=self.read_feed, args=(random.Random(self.seed + 2),), daemon=True
		)
		self.reader.start()
		self.savers = [Saver(n) for n in range(SAVERS)]
		self.workers = [start_worker(burst=False) for _ in range(2)]

	def connector(self, name: str, **fields) -> str:
		doc = frappe.get_doc(
			{
				"doctype": "Connector",
				"connector_name": name,
				"connector_type": "Webhook",
				"base_url": self.remote.url,
				"allow_private_network": 1,
				"auth_type": "None",
				"timeout_seconds": CLIENT_TIMEOUT,
				**fields,
			}
		).insert()
		return doc.name

	def rule(self, connector: str, events, path, field_map=CUSTOMER_MAP, **fields) -> str:
		keys = ("erpnext_field", "external_path", "transform", "transform_option", "required")
		doc = frappe.get_doc(
			{
				"doctype": "Sync Rule",
				"connector": connector,
				"reference_doctype": "Customer",
				"target_path": path or "/",
				**{f"event_{e}": 1 for e in events},
				"field_map": [dict(zip(keys, row, strict=False)) for row in field_map],
				**fields,
			}
		).insert()
		return doc.name

	def tear_down(self) -> None:
		from erp_connect.testing.cleanup import delete_test_data

		self.stop_reading.set()
		for worker in self.workers:
			if worker.poll() is None:
				kill_worker(worker)
		for saver in self.savers:
			saver.stop()
		self.http_pool.shutdown(wait=True, cancel_futures=True)
		if hasattr(self, "remote"):
			self.remote.stop()
		frappe.db.rollback()
		ours = {getattr(self, "main", None), getattr(self, "gone", None)} - {None}
		for name in ours:
			frappe.cache.delete_value(delivery._backoff_key(name))
		drop_queued_jobs(lambda kwargs: kwargs.get("connector") in ours)  # drains nobody ran
		delete_test_data()

	# -- the fault schedule -------------------------------------------------------------------
	def schedule(self, deadline: float) -> None:
		"""Phases of 6-15 s, each with a receiver mood and random actions; the slow and trickle
		phases (the first two) are made to show a multiplied delivery if there can be one (see
		uncrashed_phase). Bounded in time and count."""
		# the slow and trickle phases first (in random order), so that every run of a minute or
		# more has them; then every other mood once, in random order; then moods at random
		first = list(UNCRASHED)
		rest = [m for m in MOODS if m not in UNCRASHED]
		self.rng.shuffle(first)
		self.rng.shuffle(rest)
		moods = [*first, *rest][::-1]  # popped from the end
		self.gone_at = time.monotonic() + self.rng.uniform(0.2, 0.7) * (deadline - time.monotonic())
		for _phase in range(1000):
			if time.monotonic() >= deadline:
				break
			self.mood = moods.pop() if moods else self.rng.choice(list(MOODS))
			self.timeline.append((time.time(), self.mood))
			self.stats[f"phase {self.mood}"] += 1
			phase_end = min(deadline, time.monotonic() + self.rng.uniform(6, 15))
			if self.mood in UNCRASHED:
				self.uncrashed_phase(self.mood)
				continue
			for _step in range(500):
				if time.monotonic() >= phase_end:
					break
				self.maybe_gone()
				self.step()
				self.collect_savers()
				time.sleep(self.rng.uniform(0.02, 0.4))
		self.collect_savers()

	def maybe_gone(self) -> None:
		"""Once its time has come, the /gone target answers 410 for good, as a 410 says (so a 410
		that a crash kept from being recorded comes again)."""
		if self.gone_at and time.monotonic() >= self.gone_at:
			self.remote.set_responder("/gone", lambda: Reply(410, "this hook is gone"))
			self.stats["410 from now on"] += 1
			self.gone_at = 0

	def uncrashed_phase(self, mood: str) -> None:
		"""A slow receiver with no crash injected, so that a delivery multiplied by slowness alone
		can be told from the re-sends a crash explains (at-least-once). First a healthy receiver
		until nothing is being sent (at most 8 s), so that no drain is stuck in an older send; then
		"slow": a backlog of 100-140 new documents (one claim of a drain, which takes longer to
		send than its lease at 0-3 s a request), "trickle": 8 new documents (what one drain sends
		at once) answered a byte at a time for longer than the lease; and a drain queued every
		second (as other machines' sweepers would) with workers free to run them. If a lease can run out under a send, one of them
		claims the events again while the first drain still sends them (trickle) or after the
		receiver acknowledged them (slow). Nothing else happens in this phase."""
		self.mood = "healthy"
		self.timeline.append((time.time(), "healthy"))
		quiet_by = time.monotonic() + 8
		while time.monotonic() < quiet_by and self.being_sent():
			self.collect_savers()
			time.sleep(0.5)
		self.mood = mood
		self.timeline.append((time.time(), mood))
		while len(self.alive()) < MAX_WORKERS + 1:
			self.workers.append(start_worker(burst=False))
			self.stats["workers started"] += 1
		if mood == "slow":
			self.burst(self.rng.randint(100, 140))
		else:
			self.burst(delivery.DEFAULT_IN_FLIGHT)  # as many as one drain sends at once
		phase_end = time.monotonic() + UNCRASHED_PHASE_SECONDS
		for _ in range(200):
			if time.monotonic() >= phase_end:
				break
			self.extra_drain()
			self.collect_savers()
			self.maybe_gone()
			time.sleep(1)

	def step(self) -> None:
		actions = (
			(30, self.quick_saves),
			(12, self.quick_update),
			(14, self.long_transaction),
			(3, lambda: self.burst(self.rng.randint(10, 30))),
			(5, self.sweep),
			(3, self.extra_drain),
			(4, self.kill_a_worker),
			(4, self.start_a_worker),
			(4, self.kill_db_connection),
			(2, self.flush_redis),
			(4, self.upserts),
		)
		weights = [w for w, _ in actions]
		self.rng.choices([a for _, a in actions], weights)[0]()

	def reply(self) -> Reply:
		"""The remote's answer to one request, picked by the current mood (in the remote's threads)."""
		with self.reply_lock:
			choices = MOODS[self.mood]
			maker = self.reply_rng.choices([m for _, m in choices], [w for w, _ in choices])[0]
			return maker(self.reply_rng)

	# -- saves ----------------------------------------------------------------------------------
	def new_name(self) -> str:
		self.counter += 1
		return f"{NAME}{self.seed} {self.counter}"

	def quick_saves(self) -> None:
		for _ in range(self.rng.randint(1, 4)):
			self.insert_here(self.new_name())
		self.stats["quick inserts"] += 1

	def burst(self, count: int) -> None:
		for _ in range(count):
			self.insert_here(self.new_name(), commit=False)
		frappe.db.commit()
		self.stats["bursts"] += 1
		self.stats["burst documents"] += count

	def insert_here(self, name: str, commit: bool = True) -> None:
		doc = frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": name,
				"customer_group": "All Customer Groups",
				"territory": "All Territories",
			}
		).insert()
		self.saves.append(Save(doc.name, str(doc.modified), "main"))
		self.committed.append(doc.name)
		if commit:
			frappe.db.commit()

	def quick_update(self) -> None:
		name = self.free_customer()
		if not name:
			return
		doc = frappe.get_doc("Customer", name)
		doc.customer_details = f"harness update {self.counter}"
		self.counter += 1
		doc.save()
		frappe.db.commit()
		self.saves.append(Save(doc.name, str(doc.modified), "main"))
		self.stats["quick updates"] += 1

	def free_customer(self) -> str | None:
		free = [n for n in self.committed[-200:] if n not in self.held]
		return self.rng.choice(free) if free else None

	def long_transaction(self) -> None:
		idle = [s for s in self.savers if not s.busy]
		if not idle:
			return
		saver = self.rng.choice(idle)
		hold = round(self.rng.uniform(2, 6), 2)
		name = self.free_customer() if self.rng.random() < 0.4 else None
		if name:
			self.held.add(name)
			saver.send({"op": "update", "name": name, "hold": hold})
		else:
			saver.send({"op": "insert", "name": self.new_name(), "hold": hold})
		self.stats["long transactions"] += 1

	def collect_savers(self) -> None:
		for saver in self.savers:
			for answer in saver.answers():
				self.held.discard(answer.get("name"))
				if answer.get("ok"):
					self.saves.append(Save(answer["name"], answer["modified"], saver.label, answer["hold"]))
					if answer["op"] == "insert":
						self.committed.append(answer["name"])
				else:
					self.stats["saver errors"] += 1
					self.log(f"harness: saver {saver.label} failed: {answer.get('error')}")

	# -- workers, jobs, Redis, database connections --------------------------------------------
	def alive(self) -> list[subprocess.Popen]:
		self.workers = [w for w in self.workers if w.poll() is None]
		return self.workers

	def kill_a_worker(self) -> None:
		alive = self.alive()
		if alive:
			self.crashes.append(time.time())
			kill_worker(self.rng.choice(alive))
			self.stats["workers killed"] += 1
			if len(alive) == 1:
				self.start_a_worker()

	def start_a_worker(self) -> None:
		if len(self.alive()) < MAX_WORKERS:
			self.workers.append(start_worker(burst=False))
			self.stats["workers started"] += 1

	def sweep(self) -> None:
		delivery.sweep()  # what the scheduler does every minute, more often here
		self.stats["sweeps"] += 1

	def extra_drain(self) -> None:
		"""A drain of its own job id, as another machine's sweeper or wake-up would queue."""
		self.counter += 1
		frappe.enqueue(
			waking.DRAIN,
			queue="default",
			job_id=f"erp_connect:harness-drain:{self.main}:{self.counter}",
			connector=self.main,
		)
		self.stats["extra drains"] += 1

	def flush_redis(self) -> None:
		"""Redis lost its data, as far as this site is concerned: every key with this site's
		prefix (wake-up counters, backoffs, cached rules, ...) and this site's queued jobs. Other
		sites' and benches' keys share these databases, so no FLUSHDB."""
		frappe.cache.delete_keys("")
		self.stats["redis flushes"] += 1
		self.stats["queued jobs dropped"] += drop_queued_jobs(lambda kwargs: True)

	def kill_db_connection(self) -> None:
		"""KILL CONNECTION of a database connection held by a worker or its work horse."""
		ids = worker_connection_ids(self.alive())
		if not ids:
			return
		connection = self.rng.choice(sorted(ids))
		try:
			self.crashes.append(time.time())
			frappe.db.sql(f"kill connection {int(connection)}")
			self.stats["db connections killed"] += 1
		except Exception as e:  # it may have closed meanwhile
			self.log(f"harness: kill connection {connection}: {e}")

	# -- inbound: upserts with replays, and the change feed ---------------------------------------
	def upserts(self) -> None:
		"""One upsert call sent 2-3 times at once (a client retrying), with the same
		Idempotency-Key, or without one, or with the same key and another body."""
		ids = [f"h-{self.seed}-{self.rng.randint(0, 9)}" for _ in range(self.rng.randint(1, 3))]
		ids = sorted(set(ids))
		self.inbound_ids.update(ids)
		kind = self.rng.choice(["same key", "no key", "key, other body"])
		key = f"harness-{self.seed}-{self.rng.randint(0, 10**9)}"
		for copy in range(self.rng.randint(2, 3)):
			records = [
				{
					"id": i,
					"name": f"{NAME}in {i}",
					"type": "person" if kind != "no key" and copy else "company",
				}
				for i in ids
			]
			if kind == "same key":
				records = [{**r, "type": "company"} for r in records]
			headers = {} if kind == "no key" else {"Idempotency-Key": key}
			self.http_pool.submit(self.call_upsert, ids, records, headers)
		self.stats["upsert rounds"] += 1

	def call_upsert(self, ids: list[str], records: list[dict], headers: dict) -> None:
		body = {"connector": self.api, "doctype": "Customer", "records": records}
		try:
			r = requests.post(  # a session of its own: these calls run in threads
				f"{self.url}/api/method/erp_connect.api.v1.upsert",
				json=body,
				headers={**self.http.headers, **headers},
				timeout=60,
			)
			self.inbound_calls.append((",".join(ids), r.status_code, r.text[:300]))
		except requests.RequestException as e:
			self.inbound_calls.append((",".join(ids), 0, str(e)[:300]))

	def read_feed(self, rng: random.Random) -> None:
		"""Follow the change feed as a client would, until told to stop (then read to the end)."""
		for _ in range(100_000):
			stopping = self.stop_reading.is_set()
			more = self.read_feed_page()
			if more:
				continue
			if stopping:
				return
			time.sleep(rng.uniform(0.2, 1.0))

	def read_feed_page(self) -> bool:
		try:
			r = self.http.get(
				f"{self.url}/api/method/erp_connect.api.v1.changes",
				params={
					"connector": self.api,
					"doctype": "Customer",
					"limit": 100,
					"cursor": self.feed_cursor,
				},
				timeout=30,
			)
			r.raise_for_status()
			page = r.json()["message"]
		except (requests.RequestException, ValueError, KeyError) as e:
			self.stats["feed errors"] += 1
			self.log(f"harness: feed read failed: {e}")
			time.sleep(0.5)
			return False
		with self.feed_lock:
			for record in page["records"]:
				seen = self.feed_seen.get(record["name"])
				if seen is None or get_datetime(record["modified"]) > get_datetime(seen):
					self.feed_seen[record["name"]] = record["modified"]
		self.feed_cursor = page["cursor"]
		self.stats["feed pages"] += 1
		return bool(page["has_more"])

	# -- settling -------------------------------------------------------------------------------
	def settle(self, deadline: float) -> None:
		"""No more faults: a healthy receiver, two workers, sweeps, and retries made due now (the
		clock moved forward); until every event is finished, or the deadline."""
		self.mood = "healthy"
		self.timeline.append((time.time(), "settling"))
		for _ in range(2 - len(self.alive())):
			self.workers.append(start_worker(burst=False))
		wait_savers = time.monotonic() + 20
		while any(s.busy for s in self.savers) and time.monotonic() < wait_savers:
			self.collect_savers()
			time.sleep(0.2)
		self.collect_savers()
		self.http_pool.shutdown(wait=True)
		settled_at = None
		for n in range(10_000):
			if time.monotonic() >= deadline:
				self.stats["settle timed out"] += 1
				break
			frappe.db.commit()
			for name in (self.main, self.gone):
				frappe.cache.delete_value(delivery._backoff_key(name))
			frappe.db.sql(
				"""update `tabSync Event` set next_attempt_at = %s
				where connector in %s and status = %s and next_attempt_at > %s""",
				(now_datetime(), (self.main, self.gone), RETRYING, now_datetime()),
			)
			frappe.db.commit()
			if n % 5 == 0:
				self.sweep()
				self.extra_drain()  # a sweep of this minute may still show as started by a killed worker
			if not self.unfinished():
				settled_at = time.monotonic()
				break
			time.sleep(1)
		self.stats["settle seconds"] = round(time.monotonic() - (deadline - SETTLE_SECONDS))
		if settled_at:
			time.sleep(1)  # let the last answers reach the remote's log
		self.stop_reading.set()
		self.reader.join(60)

	def being_sent(self) -> int:
		"""Events of the main connector that a drain holds, or that are due now."""
		frappe.db.commit()
		return frappe.db.sql(
			"""select count(*) from `tabSync Event` where connector = %s
			and (status = 'Sending' or (status in ('Pending', 'Retrying') and next_attempt_at <= %s))""",
			(self.main, now_datetime()),
		)[0][0]

	def mood_at(self, at: float) -> str:
		mood = "healthy"
		for since, name in self.timeline:
			if since > at:
				break
			mood = name
		return mood

	def unfinished(self) -> int:
		count = frappe.db.count("Sync Event", {"connector": self.main, "status": ("in", UNFINISHED)})
		if not frappe.db.get_value("Sync Rule", self.gone_rule, "enabled"):
			return count  # the rule's events are kept until someone enables it again
		return count + frappe.db.count("Sync Event", {"connector": self.gone, "status": ("in", UNFINISHED)})

	# -- the checker ------------------------------------------------------------------------------
	def check(self) -> None:
		frappe.db.commit()
		v = self.findings.violations
		events = frappe.get_all(
			"Sync Event",
			{"connector": ("in", (self.main, self.gone))},
			["name", "event_id", "connector", "sync_rule", "reference_name", "seq", "status", "last_error"],
			order_by="name asc",
		)
		exchanges = defaultdict(list)
		for x in self.remote.exchanges_of():
			if x.event_id:
				exchanges[x.event_id].append(x)
		self.stats["events"] = len(events)
		self.stats["saves"] = len(self.saves)
		self.stats["requests"] = sum(len(x) for x in exchanges.values())
		self.stats.update(f"outcome {k}" for x in exchanges.values() for k in (e.outcome for e in x))
		main_events = [e for e in events if e.connector == self.main]

		# no lost events: every committed save has its events (insert: 2, update: 1)
		saves_of = Counter(s.name for s in self.saves)
		events_of = Counter(e.reference_name for e in main_events)
		for name, count in saves_of.items():
			if events_of[name] < count:
				v["saves have events"].append(f"{name}: {count} committed saves, {events_of[name]} events")

		# delivered at least once, or dead with a reason
		gone_disabled = not frappe.db.get_value("Sync Rule", self.gone_rule, "enabled")
		for e in events:
			acked = [x for x in exchanges.get(e.event_id, []) if x.answered_2xx]
			if e.status == DELIVERED and not acked:
				v["delivered or dead"].append(
					f"{e.event_id} is Delivered but the receiver never answered it 2xx"
				)
			elif e.status == DEAD and not e.last_error:
				v["delivered or dead"].append(f"{e.event_id} is Dead without a reason")
			elif e.status not in (DELIVERED, DEAD) and not (e.connector == self.gone and gone_disabled):
				v["delivered or dead"].append(
					f"{e.event_id} ({e.reference_name} seq {e.seq}) still {e.status} after settling: {e.last_error}"
				)
		self.stats.update(f"status {e.status}" for e in events)

		# never in flight twice at once
		for event_id, xs in exchanges.items():
			xs = sorted(xs, key=lambda x: x.started_at)
			ends = xs[0].ended_at
			for x in xs[1:]:
				if x.started_at < ends:
					v["never in flight twice"].append(
						f"{event_id}: a request started {ends - x.started_at:.2f} s before the previous one ended"
						f" ({len(xs)} requests in all; receiver {self.mood_at(x.started_at)})"
					)
					self.stats[f"in flight twice under {self.mood_at(x.started_at)}"] += 1
					break
				ends = max(ends, x.ended_at)
		# never multiplied: after an acknowledgement the client surely read (answered 2xx well
		# within its timeout), the event is sent again only if a crash came in between
		for event_id, xs in exchanges.items():
			acks = [x for x in xs if x.answered_2xx and x.ended_at - x.started_at < CLIENT_TIMEOUT - 0.5]
			if not acks:
				continue
			ack = min(acks, key=lambda x: x.started_at)
			again = [x for x in xs if x.started_at > ack.ended_at]
			if again:
				self.stats["events sent again after an acknowledgement"] += 1
			for x in again:
				if not any(ack.started_at - 0.5 <= c <= x.started_at + 0.5 for c in self.crashes):
					v["never multiplied"].append(
						f"{event_id}: acknowledged, then sent again {x.started_at - ack.ended_at:.1f} s later"
						f" with no crash in between ({len(xs)} requests in all; receiver"
						f" {self.mood_at(ack.started_at)} at the acknowledgement)"
					)
					self.stats[f"multiplied under {self.mood_at(ack.started_at)}"] += 1
					break

		# per-document order of first deliveries
		by_document = defaultdict(list)
		for e in main_events:
			acked = [x.started_at for x in exchanges.get(e.event_id, []) if x.answered_2xx]
			if acked:
				by_document[e.reference_name].append((e.seq, min(acked), e.event_id))
		for name, firsts in by_document.items():
			firsts.sort()
			for (seq_a, at_a, _), (seq_b, at_b, id_b) in itertools.pairwise(firsts):
				if at_b < at_a:
					v["per-document order"].append(
						f"{name}: seq {seq_b} ({id_b}) first delivered {at_a - at_b:.2f} s before seq {seq_a}"
					)

		# the feed misses nothing
		for save in self.saves:
			seen = self.feed_seen.get(save.name)
			if seen is None or get_datetime(seen) < get_datetime(save.modified):
				v["feed misses nothing"].append(
					f"{save.name} modified {save.modified} (by {save.by}, held {save.held:g} s) never seen"
					f" by the feed (latest seen: {seen})"
				)
		self.stats["feed documents"] = len(self.feed_seen)

		# inbound records written once
		for external_id in sorted(self.inbound_ids):
			links = frappe.get_all(
				"Sync Link",
				{"connector": self.api, "reference_doctype": "Customer", "external_id": external_id},
				pluck="reference_name",
			)
			customers = frappe.db.count("Customer", {"customer_name": f"{NAME}in {external_id}"})
			if len(links) != 1 or customers != 1:
				v["inbound written once"].append(f"{external_id}: {len(links)} links, {customers} customers")
		for ids, status, excerpt in self.inbound_calls:
			self.stats[f"upsert {status}"] += 1
			if status >= 500 or status == 0:
				v["inbound written once"].append(f"upsert of {ids} answered {status}: {excerpt}")

		# 410 disables its rule, with the reason, and keeps the rule's events
		if any(
			x.path == "/gone" and x.status == 410 and x.outcome == "answered" for x in self.remote.exchanges
		):
			reason = frappe.db.get_value("Sync Rule", self.gone_rule, "disabled_reason")
			if not gone_disabled or not reason:
				v["410 disables the rule"].append(
					f"rule {self.gone_rule} enabled={not gone_disabled} reason={reason!r}"
				)
			kept = {e.event_id for e in events if e.connector == self.gone}
			sent = {x.event_id for x in self.remote.exchanges_of("/gone") if x.event_id}
			if sent - kept:
				v["410 disables the rule"].append(
					f"events of the disabled rule were lost: {sorted(sent - kept)[:3]}"
				)


def drop_queued_jobs(matches) -> int:
	"""Delete this site's queued jobs whose keyword arguments ``matches``; returns how many."""
	from frappe.utils.background_jobs import get_queue

	dropped = 0
	for job in get_queue("default").get_jobs():
		kwargs = job.kwargs or {}
		if kwargs.get("site") == frappe.local.site and matches(kwargs.get("kwargs") or {}):
			job.delete()
			dropped += 1
	return dropped


def worker_connection_ids(workers: list[subprocess.Popen]) -> set[int]:
	"""The MariaDB connection ids that these worker processes (and their work horses) hold."""
	port = int(frappe.conf.db_port or 3306)
	ports = set()
	for worker in workers:
		try:
			parent = psutil.Process(worker.pid)
			processes = [parent, *parent.children(recursive=True)]
		except psutil.NoSuchProcess:
			continue
		for process in processes:
			try:
				for c in process.connections(kind="tcp"):
					if c.raddr and c.raddr.port == port:
						ports.add(str(c.laddr.port))
			except (psutil.NoSuchProcess, psutil.AccessDenied):
				continue
	if not ports:
		return set()
	rows = frappe.db.sql(
		"select id, host from information_schema.processlist where user = %s", frappe.conf.db_name
	)
	return {int(i) for i, host in rows if host and host.rsplit(":", 1)[-1] in ports}


class Saver:
	"""A subprocess with its own database connection that saves a Customer and keeps the
	transaction open for a while before it commits (``python -m erp_connect.testing.harness``)."""

	def __init__(self, n: int):
		self.label = f"saver {n}"
		self.busy = False
		self._answers: queue.Queue = queue.Queue()
		self.process = subprocess.Popen(
			[sys.executable, "-m", "erp_connect.testing.harness", frappe.local.site],
			cwd=os.path.abspath(frappe.local.sites_path),
			stdin=subprocess.PIPE,
			stdout=subprocess.PIPE,
			stderr=subprocess.DEVNULL,
			text=True,
			bufsize=1,
			start_new_session=True,
		)
		threading.Thread(target=self._read, daemon=True).start()

	def _read(self) -> None:
		for line in self.process.stdout:
			if line.startswith("{"):
				self._answers.put(json.loads(line))

	def send(self, command: dict) -> None:
		if self.process.poll() is not None:
			return
		self.busy = True
		self.process.stdin.write(json.dumps(command) + "\n")
		self.process.stdin.flush()

	def answers(self) -> list[dict]:
		got = []
		while not self._answers.empty():
			got.append(self._answers.get_nowait())
			self.busy = False
		return got

	def stop(self) -> None:
		if self.process.poll() is None:
			self.process.kill()
		self.process.wait(10)


def saver_main(site: str) -> None:
	"""The saver's side: one JSON command per line of stdin, one JSON answer per line of stdout."""
	frappe.init(site=site, sites_path=os.getcwd())
	frappe.connect()
	frappe.set_user("Administrator")
	for _ in range(100_000):
		line = sys.stdin.readline()
		if not line:
			break
		command = json.loads(line)
		answer = {"op": command["op"], "name": command["name"], "hold": command["hold"]}
		try:
			if command["op"] == "insert":
				doc = frappe.get_doc(
					{
						"doctype": "Customer",
						"customer_name": command["name"],
						"customer_group": "All Customer Groups",
						"territory": "All Territories",
					}
				).insert()
			else:
				doc = frappe.get_doc("Customer", command["name"])
				doc.customer_details = f"held for {command['hold']} s"
				doc.save()
			time.sleep(command["hold"])  # the transaction stays open: its modified is already old
			frappe.db.commit()
			answer.update(ok=True, name=doc.name, modified=str(doc.modified))
		except Exception as e:
			frappe.db.rollback()
			answer.update(ok=False, error=repr(e)[:300])
		print(json.dumps(answer), flush=True)
	frappe.destroy()


def soak(minutes: float = 10, seed: int | None = None) -> dict:
	"""The harness for longer: ``bench --site SITE execute erp_connect.testing.harness.soak
	--kwargs "{'minutes': 10, 'seed': 7}"``. Prints the seed and the findings; returns them."""
	findings = Harness(seed if seed is not None else seed_from_env(), float(minutes) * 60).run()
	return {"seed": findings.seed, "broken": findings.broken(), "report": findings.describe()}


if __name__ == "__main__":
	saver_main(sys.argv[1])
