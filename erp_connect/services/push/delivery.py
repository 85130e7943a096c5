"""Delivery: drain a connector's outbox on Frappe's RQ workers, through the connector's transport
(engine/transports: a webhook receiver, a REST API, another Frappe site, ...).

Several workers on several machines may drain the same connector at once. Claims of one connector
take turns under a database lock (GET_LOCK, shared by every worker that uses the database); each
takes only the oldest unfinished event of each document and is committed as "Sending" with a lease
before anything is sent. So no event is sent twice at the same time, event n+1 of a document waits
until event n is delivered or dead, and the events of a worker that died are claimed again when
their lease runs out. Sending happens outside the lock, in parallel.

No event is sent under a lease that may have run out: a claim holds what its requests can send
within one lease, each outcome is recorded within a fraction of a second of its request coming
back, the lease of what is not recorded yet is renewed at half time, and a request starts only
while its lease has the timeout and a margin left. A slow receiver slows delivery down; it never
multiplies it.
"""

import json
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import frappe
from frappe.utils import add_to_date, now_datetime

from erp_connect.engine import http, transports, wake
from erp_connect.engine.retry import Outcome, RetryPolicy, capped_wait
from erp_connect.engine.transports import OutboundEvent, Route, SendResult
from erp_connect.engine.transports.base import result_of_exception
from erp_connect.erp_connect.doctype.connector.connector import DEFAULT_IN_FLIGHT
from erp_connect.erp_connect.doctype.sync_event.sync_event import DOCUMENT_INDEX, RULE_UNFINISHED_INDEX
from erp_connect.services.common import alerts, jobs
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.status import DEAD, DELIVERED, RETRYING, SENDING, UNFINISHED, WAITING
from erp_connect.services.push import followed, replica
from erp_connect.services.push import wake as waking
from erp_connect.services.push.outbox import clear_rules_cache
from erp_connect.services.push.write_back import write_back_events

CLAIM_CHUNK = 1000  # most events claimed at once: bounds memory however large the backlog
LEASE_MARGIN_SECONDS = 2  # a request starts only with its timeout and this left on its lease
MAX_DRAIN_SECONDS = 240  # then hand over to a fresh job (RQ timeout: waking.DRAIN_JOB_TIMEOUT)
RECORD_WITHIN_SECONDS = 0.2  # an outcome is recorded at most this long after its request came back
IDLE_LOOK_SECONDS = 0.2  # how often a lingering drain looks at the outbox again
DRAINS_PER_CONNECTOR = 4  # with a backlog, up to this many workers drain one connector together
POLICY = RetryPolicy()

DUE = """((e.status in %(waiting)s and e.next_attempt_at <= %(now)s)
	or (e.status = %(sending)s and e.lease_until < %(now)s))"""
DUE_VALUES = {"waiting": WAITING, "sending": SENDING, "unfinished": UNFINISHED}

# Walks the primary key (event ids, which start with the time) from the oldest unfinished event of
# the connector's enabled rules and stops at the limit, so its cost does not grow with the backlog. An
# event is a candidate only when no earlier event (by seq) of the same document is still unfinished:
# the per-document order.
CLAIMED_FIELDS = "name, event_id, sync_rule, payload, doc_event, reference_doctype, reference_name"
CANDIDATES_SQL = f"""
select {", ".join("e." + f for f in CLAIMED_FIELDS.split(", "))}
from `tabSync Event` e force index (primary)
where e.name >= %(start)s and e.connector = %(connector)s and e.sync_rule in %(rules)s and {DUE}
	and not exists (
		select 1 from `tabSync Event` p force index ({DOCUMENT_INDEX})
		where p.reference_doctype = e.reference_doctype and p.reference_name = e.reference_name
			and p.connector = e.connector and (p.seq < e.seq or (p.seq = e.seq and p.name < e.name))
			and p.status in %(unfinished)s)
order by e.name
limit %(limit)s
"""

# The oldest unfinished event of one rule in one status: a single index dive
OLDEST_SQL = f"""(select min(name) from `tabSync Event` force index ({RULE_UNFINISHED_INDEX})
	where connector = %s and sync_rule = %s and status = %s)"""

CLAIM_SQL = f"""
update `tabSync Event` e set e.status = %(sending)s, e.claim_token = %(token)s, e.lease_until = %(lease)s,
	e.modified = %(now)s
where e.name in %(names)s and {DUE}
"""


# -- entry points ----------------------------------------------------------------------------------
def sweep() -> None:
	"""Every minute: drain every connector with due events."""
	for connector in connectors_with_due_events():
		jobs.enqueue_sweep(
			waking.DRAIN, "sweep", connector, connector=connector, timeout=waking.DRAIN_JOB_TIMEOUT
		)


def connectors_with_due_events() -> list[str]:
	return frappe.db.sql_list(
		f"""select distinct e.connector from `tabSync Event` e
		join `tabConnector` c on c.name = e.connector and c.enabled = 1 and c.dry_run = 0 and c.paused = 0
		where {DUE}""",
		{"now": now_datetime(), **DUE_VALUES},
	)


def drain(connector: str, max_seconds: float = MAX_DRAIN_SECONDS, helper: bool = False) -> dict:
	"""Deliver everything due for ``connector``; returns counts by outcome. A ``helper`` drain is
	one a drain with a backlog called in: it stops as soon as it finds nothing to claim."""
	if not frappe.db.exists("Connector", connector):
		return {}  # deleted since the job was queued
	stats = Drainer(connector, helper).run(max_seconds)
	if stats.get("more"):
		frappe.enqueue(waking.DRAIN, queue="default", timeout=waking.DRAIN_JOB_TIMEOUT, connector=connector)
	return stats


# -- the drain -------------------------------------------------------------------------------------
@dataclass
class Claim:
	token: str
	expires: float  # time.monotonic() when the lease runs out (counted from before it was taken)


def call_helpers(connector: str) -> None:
	"""A backlog: more drains of this connector, one per slot, so that every free RQ worker takes
	part; they claim disjoint documents, so per-document order holds. Job ids of this minute, so a
	helper left "started" by a killed worker blocks its slot for a minute at most."""
	for slot in range(1, DRAINS_PER_CONNECTOR):
		jobs.enqueue_sweep(
			waking.DRAIN,
			"drain-helper",
			f"{connector}:{slot}",
			timeout=waking.DRAIN_JOB_TIMEOUT,
			connector=connector,
			helper=True,
		)


class Drainer:
	def __init__(self, connector: str, helper: bool = False):
		self.helper = helper
		self.connector = frappe.get_doc("Connector", connector)
		self.kind = transports.kind(self.connector.connector_type)
		self.rules = frappe.get_all(
			"Sync Rule",
			{"connector": connector, "enabled": 1, "direction": "Push"},
			["name", "reference_doctype", "target_path", "http_method", "batch_size"],
		)
		# the longest one send may take: each request it makes in a row may use the whole timeout
		timeout = self.connector.timeout_seconds or http.DEFAULT_TIMEOUT_SECONDS
		self.timeout = timeout * self.kind.requests_per_send
		self.lease_seconds = 3 * self.timeout + 5
		self.max_in_flight = self.connector.get("max_in_flight") or DEFAULT_IN_FLIGHT
		self.request_seconds: float | None = None  # the requests' moving average, once timed
		self.deadline = float("inf")
		self.next_claim: tuple[Claim, list[dict]] | None = None  # taken while the last one was sent

	def run(self, max_seconds: float) -> dict:
		stats = {o.value: 0 for o in Outcome}
		name = self.connector.name
		if (
			not self.connector.enabled
			or self.connector.paused
			or self.connector.dry_run
			or not self.rules
			or backoff_until(name)
		):
			return stats
		self.transport = self.kind(self.connector.endpoint())
		self.routes = {r.name: self.route_of(r) for r in self.rules}
		try:
			return self.drain_claims(stats, max_seconds)
		finally:
			self.transport.close()  # a broker or database connection ends with the run

	def specs(self) -> dict:
		"""The rules' push specs (for what is rendered when it is sent), read once a drain."""
		if not hasattr(self, "_specs"):
			self._specs = {r.name: frappe.get_doc("Sync Rule", r.name).push_spec() for r in self.rules}
		return self._specs

	def route_of(self, rule) -> Route:
		"""Where a rule's events go; for a replica also the layout of the rule's doctype."""
		table = None
		if self.kind.mirrors_tables:
			table = replica.table_of(replica.schema_of(self.connector), rule.reference_doctype)
		return Route(
			rule.target_path, rule.http_method or "POST", self.transport.batch_size(rule.batch_size), table
		)

	def drain_claims(self, stats: dict, max_seconds: float) -> dict:
		name = self.connector.name
		self.deadline = time.monotonic() + max_seconds
		linger = wake.Linger(waking.wake_value(name), time.monotonic())
		helpers_called = self.helper
		with ThreadPoolExecutor(self.max_in_flight) as self.pool:
			while True:
				if time.monotonic() > self.deadline:
					self.hand_back_next_claim()
					stats["more"] = True
					break
				waking.keep_awake(name)
				looked_at = time.monotonic()
				# a claim taken ahead that found nothing is not used: it looked before ``looked_at``
				ahead, self.next_claim = self.next_claim, None
				claimed = ahead if ahead and ahead[1] else self.claim()
				if claimed is None:
					continue  # another drain holds the claim lock: look again
				claim, rows = claimed
				if not rows and self.helper:
					break  # the drain that called it in lingers and watches the wake-ups
				if not rows:
					linger.saw(waking.wake_value(name), time.monotonic())
					if not linger.may_sleep(looked_at):
						time.sleep(min(IDLE_LOOK_SECONDS, linger.wait(time.monotonic())))
						continue
					if waking.sleep_if_no_new_wakeups(name, linger.seen):
						break
					continue  # woken meanwhile: look again
				if len(rows) >= self.claim_limit() and not helpers_called:
					call_helpers(name)  # a full claim: there is a backlog
					helpers_called = True
				if any(r.doc_event in followed.FOLLOWED for r in rows):
					followed.render_at_send(rows, self.specs())
				results, slow_down = self.deliver(claim, rows, claim_ahead=len(rows) >= self.claim_limit())
				for r in results:
					stats[r.verdict.outcome.value] += len(r.names)
				if slow_down or backoff_until(name):
					self.hand_back_next_claim()
					break  # the receiver asked us to slow down, or a target went away
		return stats

	# -- claiming --------------------------------------------------------------------------------
	def claim(self, lock_wait: float = 30) -> tuple[Claim, list[dict]] | None:
		"""Take the next due events, one per document, and commit them as Sending with a lease.
		Claims of one connector take turns under a database lock, which every worker on every
		machine shares; the UPDATE re-checks each row, so a row changed meanwhile is left alone.
		None when the lock was not free within ``lock_wait`` seconds (nothing was looked at)."""
		token = frappe.generate_hash(length=20)
		with named_lock("claim", self.connector.name, lock_wait) as taken:
			if not taken:
				return None
			# a fresh snapshot: what the drains that held the lock meanwhile claimed is Sending now
			# (read from an older one, the oldest due events would be theirs, and we would claim none)
			frappe.db.commit()
			taken_at = time.monotonic()  # before now: this process never thinks the lease longer
			now = now_datetime()
			values = {"connector": self.connector.name, "rules": tuple(self.routes), "now": now, **DUE_VALUES}
			start = self.walk_start()
			rows = (
				frappe.db.sql(
					CANDIDATES_SQL, {**values, "start": start, "limit": self.claim_limit()}, as_dict=True
				)
				if start
				else []
			)
			if rows:
				names = tuple(r.name for r in rows)
				lease = add_to_date(now, seconds=self.lease_seconds)
				frappe.db.sql(CLAIM_SQL, {**values, "token": token, "lease": lease, "names": names})
				if frappe.db._cursor.rowcount < len(names):  # some changed since they were read
					rows = frappe.db.sql(
						f"""select {CLAIMED_FIELDS} from `tabSync Event`
						where name in %s and claim_token = %s order by name""",
						(names, token),
						as_dict=True,
					)
			frappe.db.commit()
		return Claim(token, taken_at + self.lease_seconds), rows

	def walk_start(self) -> str | None:
		"""The oldest unfinished event of the enabled rules, one index dive per rule and status: the
		events a rule disabled by a 410 leaves unfinished are never walked over again."""
		pairs = [(self.connector.name, rule, status) for rule in self.routes for status in UNFINISHED]
		subqueries = " union all ".join(f"select {OLDEST_SQL} as oldest" for _ in pairs)
		return frappe.db.sql(
			f"select min(oldest) from ({subqueries}) t", [v for pair in pairs for v in pair]
		)[0][0]

	def claim_limit(self) -> int:
		"""As many events as one lease can send, every request taking the whole timeout; once this
		drain has timed its requests, as many as half a lease sends at their pace, if that is more.
		Either way no request starts on a lease without its timeout left (send), and the lease is
		renewed at half time: a receiver that slows down delays the tail, it never gets it twice."""
		waves = max(1, int((self.lease_seconds - LEASE_MARGIN_SECONDS) // self.timeout))
		if self.request_seconds:
			waves = max(waves, int(self.lease_seconds / 2 / self.request_seconds))
		batch = min(route.batch_size for route in self.routes.values())
		return min(CLAIM_CHUNK, self.max_in_flight * waves * batch)

	def timed(self, seconds: float) -> None:
		"""A request's time, into the moving average the claims are sized by."""
		previous = self.request_seconds
		self.request_seconds = seconds if previous is None else 0.8 * previous + 0.2 * seconds

	# -- sending ----------------------------------------------------------------------------------
	def deliver(
		self, claim: Claim, rows: list[dict], claim_ahead: bool = False
	) -> tuple[list[SendResult], bool]:
		"""Send the claimed events, max_in_flight requests at a time, recording the outcomes that came
		back within RECORD_WITHIN_SECONDS together, and renewing the lease of what is not recorded
		yet at half time. Also whether to stop draining: the receiver asked us to slow down, or a
		target went away (what was not sent yet is then handed back). With ``claim_ahead`` (a
		backlog), the next claim is taken while the last requests are out (``next_claim``): the
		database's part of a claim then costs the drain no time of its own."""
		waiting = deque(self.requests_of(rows))
		in_flight: dict[Future, list[str]] = {}
		results: list[SendResult] = []
		unrecorded = Unrecorded()
		stop = False
		while waiting or in_flight:
			if waiting and (stop or time.monotonic() > self.deadline):
				self.release(claim, _names_of(waiting))
				waiting.clear()
			if claim.expires - time.monotonic() < self.lease_seconds / 2:
				self.record(claim.token, unrecorded.take())  # recorded events need no renewal
				self.renew(claim, waiting, in_flight)
			while waiting and len(in_flight) < self.max_in_flight:
				route, events = waiting.popleft()
				future = self.pool.submit(self.send, claim, route, events)
				in_flight[future] = [e.name for e in events]
			if not in_flight:
				break
			if claim_ahead and not waiting and not stop:
				claim_ahead = False
				# without waiting for the lock: this claim's renewals and records must not wait
				self.next_claim = self.claim(lock_wait=0)
			now = time.monotonic()
			renew_in = claim.expires - self.lease_seconds / 2 - now
			done, _ = wait(
				in_flight,
				timeout=max(min(renew_in, unrecorded.due_in(now)), 0.01),
				return_when=FIRST_COMPLETED,
			)
			finished, skipped = [], []
			for future in done:
				names = in_flight.pop(future)
				outcome = future.result()
				if outcome is None:
					skipped += names
				else:
					finished += outcome
			self.release(claim, skipped)
			unrecorded.add(finished, time.monotonic())
			results += finished
			stop = stop or any(
				r.verdict.retry_after or r.verdict.outcome is Outcome.DISABLE for r in finished
			)
			if unrecorded.due_in(time.monotonic()) <= 0:
				self.record(claim.token, unrecorded.take())
		self.record(claim.token, unrecorded.take())  # what came back last
		return results, stop

	def requests_of(self, rows: list[dict]) -> list[tuple[Route, list[OutboundEvent]]]:
		"""Each rule's events in requests of its batch size."""
		requests_to_send = []
		ids = self.remote_ids_of(rows) if self.kind.needs_remote_ids else {}
		for rule, events in _group_by(rows, "sync_rule").items():
			route = self.routes[rule]
			events = [OutboundEvent(e.name, e.event_id, e.payload, ids.get(e.name, {})) for e in events]
			for i in range(0, len(events), route.batch_size):
				requests_to_send.append((route, events[i : i + route.batch_size]))
		return requests_to_send

	def remote_ids_of(self, rows: list[dict]) -> dict[str, dict]:
		"""For kinds that name documents by the remote's ids: each event's documents (its own, its
		associations') -> their ids there, read now from the Sync Links (one query a claim), so an
		event saved before its document's first event was delivered still finds the id."""
		named = {
			row.name: self.kind.documents_named(json.loads(row.payload)) if row.payload else []
			for row in rows
		}
		wanted = {pair for pairs in named.values() for pair in pairs}
		found = {
			(doctype, name): external_id
			for doctype, name, external_id in frappe.db.sql(
				"""select reference_doctype, reference_name, external_id from `tabSync Link`
				where connector = %s and (reference_doctype, reference_name) in %s
				order by last_synced_at""",
				(self.connector.name, tuple(wanted) or (("", ""),)),
			)
		}
		return {event: {p: found[p] for p in pairs if p in found} for event, pairs in named.items()}

	def send(self, claim: Claim, route: Route, events: list[OutboundEvent]) -> list[SendResult] | None:
		"""One request, in a sender thread (no frappe here); None when the lease has too little time
		left to start it (the renewal was late or lost)."""
		if claim.expires - time.monotonic() < self.timeout + LEASE_MARGIN_SECONDS:
			return None
		started = time.monotonic()
		try:
			return self.transport.send(route, events)
		except Exception as e:  # a transport's bug must not crash the drain on every lease
			return [result_of_exception([e.name for e in events], e)]
		finally:
			self.timed(time.monotonic() - started)

	def renew(self, claim: Claim, waiting: deque, in_flight: dict[Future, list[str]]) -> None:
		"""Extend the lease of the claim's events not recorded yet. Requests whose events are no
		longer ours (the lease ran out and another drain claimed them) are not sent."""
		names = _names_of(waiting) + [n for names in in_flight.values() for n in names]
		renewed_at = time.monotonic()
		lease = add_to_date(now_datetime(), seconds=self.lease_seconds)
		frappe.db.sql(
			"""update `tabSync Event` set lease_until = %(lease)s
			where name in %(names)s and claim_token = %(token)s""",
			{"lease": lease, "names": tuple(names), "token": claim.token},
		)
		renewed = frappe.db._cursor.rowcount
		frappe.db.commit()
		claim.expires = renewed_at + self.lease_seconds
		if renewed < len(names):
			ours = set(
				frappe.db.sql_list(
					"select name from `tabSync Event` where name in %(names)s and claim_token = %(token)s",
					{"names": tuple(names), "token": claim.token},
				)
			)
			keep = [(route, events) for route, events in waiting if all(e.name in ours for e in events)]
			kept = set(_names_of(keep))
			self.release(claim, [n for n in _names_of(waiting) if n in ours and n not in kept])
			waiting.clear()
			waiting.extend(keep)

	def hand_back_next_claim(self) -> None:
		if self.next_claim:
			claim, rows = self.next_claim
			self.release(claim, [r.name for r in rows])
		self.next_claim = None

	def release(self, claim: Claim, names: list[str]) -> None:
		"""Hand back claimed events that were not sent: due again at once, for any drain."""
		if names:
			frappe.db.sql(
				"""update `tabSync Event` set claim_token = null, lease_until = %(now)s
				where name in %(names)s and claim_token = %(token)s and status = %(sending)s""",
				{"now": now_datetime(), "names": tuple(names), "token": claim.token, "sending": SENDING},
			)
			frappe.db.commit()

	# -- recording outcomes ---------------------------------------------------------------------------
	def record(self, token: str, results: list[SendResult]) -> None:
		"""Record outcomes of requests sent under ``token``; a row claimed by another drain since
		(its lease ran out) is left to that drain, and causes no alert, backoff or disabled rule."""
		if not results:
			return
		now = now_datetime()
		delivered_by_code: dict[int, list[str]] = {}
		delivered = 0
		for r in results:
			if r.verdict.outcome is Outcome.DELIVERED and (r.write_back or r.external_id):
				delivered += self.record_with_write_back(token, r, now)
			elif r.verdict.outcome is Outcome.DELIVERED:
				delivered_by_code.setdefault(r.status_code or 0, []).extend(r.names)  # 0: not HTTP
		for code, names in delivered_by_code.items():
			frappe.db.sql(
				"""update `tabSync Event` set status=%(delivered)s, delivered_at=%(now)s, attempts=attempts+1,
					last_status_code=%(code)s, last_error=null, claim_token=null, lease_until=null, modified=%(now)s
				where name in %(names)s and claim_token=%(token)s""",
				{"delivered": DELIVERED, "now": now, "code": code, "names": tuple(names), "token": token},
			)
			delivered += frappe.db._cursor.rowcount
		for result in results:
			if result.verdict.outcome is not Outcome.DELIVERED:
				self.record_failure(token, result, now)
		if delivered and self.connector.failing_since:
			alerts.connector_recovered(self.connector.name)  # the next failure is a new episode
			self.connector.failing_since = None
		frappe.db.commit()

	def record_with_write_back(self, token: str, result: SendResult, now) -> int:
		"""A delivery whose answer is written back onto its document (write_back.py), in the same
		transaction as its Delivered status, and only while the events are still ours."""
		frappe.db.sql(
			"""update `tabSync Event` set status=%(delivered)s, delivered_at=%(now)s, attempts=attempts+1,
				last_status_code=%(code)s, last_response=%(response)s, last_error=null, claim_token=null,
				lease_until=null, modified=%(now)s
			where name in %(names)s and claim_token=%(token)s""",
			{
				"delivered": DELIVERED,
				"now": now,
				"code": result.status_code or 0,
				"response": result.response,
				"names": tuple(result.names),
				"token": token,
			},
		)
		count = frappe.db._cursor.rowcount
		if count:
			note = write_back_events(
				result.names, result.write_back or {}, self.connector.name, result.external_id
			)
			if note:
				frappe.db.sql(
					"update `tabSync Event` set last_error=%s where name in %s", (note, tuple(result.names))
				)
		return count

	def record_failure(self, token: str, result: SendResult, now) -> None:
		verdict = result.verdict
		attempts = frappe.db.get_value("Sync Event", result.names[0], "attempts") + 1
		fields = {
			"attempts": attempts,
			"last_status_code": result.status_code or 0,  # 0: no HTTP response at all
			"last_response": result.response,
			"last_error": verdict.reason,
			"modified": now,
		}
		delay = POLICY.next_delay(attempts, verdict.retry_after) if verdict.outcome is Outcome.RETRY else None
		if delay is not None:
			fields.update(status=RETRYING, next_attempt_at=add_to_date(now, seconds=delay))
		else:
			if verdict.outcome is Outcome.RETRY:
				fields["last_error"] = f"gave up after {attempts} attempts: {verdict.reason}"
			fields["status"] = DEAD
		frappe.db.sql(
			"""update `tabSync Event` set status=%(status)s, attempts=%(attempts)s,
				next_attempt_at=coalesce(%(next_attempt_at)s, next_attempt_at),
				last_status_code=%(last_status_code)s, last_response=%(last_response)s, last_error=%(last_error)s,
				claim_token=null, lease_until=null, modified=%(modified)s
			where name in %(names)s and claim_token=%(token)s""",
			{"next_attempt_at": None, **fields, "names": tuple(result.names), "token": token},
		)
		if not frappe.db._cursor.rowcount:
			return  # no longer our claim: the drain that holds it now records what happens
		if verdict.retry_after:
			set_backoff(self.connector.name, verdict.retry_after)
		if verdict.outcome is Outcome.DISABLE:
			rule = frappe.db.get_value("Sync Event", result.names[0], "sync_rule")
			disable_rule(rule, verdict.reason)
		elif fields["status"] == DEAD:
			alerts.connector_failing(
				self.connector.name,
				f"{self.connector.name} is failing: an event was dead-lettered",
				f"Event {result.names[0]}: {fields['last_error']}. Later failures of this connector are not"
				" announced again until a delivery succeeds.",
				"Sync Event",
				result.names[0],
			)


def disable_rule(rule: str, reason: str) -> None:
	frappe.db.set_value("Sync Rule", rule, {"enabled": 0, "disabled_reason": reason})
	clear_rules_cache()
	alerts.connector_failing(
		frappe.db.get_value("Sync Rule", rule, "connector"),
		f"Sync Rule {rule} was disabled",
		f"The receiver answered: {reason}. Events for this rule are kept; enable the rule again once the target exists.",
		"Sync Rule",
		rule,
	)


# -- connector-wide backoff (429 / Retry-After) -------------------------------------------------------
def _backoff_key(connector: str) -> str:
	return f"erp_connect:backoff:{connector}"


def set_backoff(connector: str, seconds: float) -> None:
	"""Pause ``connector`` for what its receiver asked, at most a day (a Retry-After of years must
	not stop it invisibly, and Redis refuses an expiry that large)."""
	seconds = capped_wait(seconds)
	until = time.time() + seconds
	frappe.cache.set_value(_backoff_key(connector), until, expires_in_sec=int(seconds) + 1)


def backoff_until(connector: str) -> float | None:
	until = frappe.cache.get_value(_backoff_key(connector), expires=True)
	return until if until and until > time.time() else None


class Unrecorded:
	"""Outcomes that came back and are not recorded yet. They are recorded together at most
	RECORD_WITHIN_SECONDS after the first of them came back: one UPDATE and one commit for what a
	fast system acknowledged in that time instead of one per request (a commit is the drain's
	dearest step). Still far inside the lease, which is renewed only after they are recorded."""

	def __init__(self):
		self.results: list[SendResult] = []
		self.since: float | None = None

	def add(self, results: list[SendResult], now: float) -> None:
		if results and self.since is None:
			self.since = now
		self.results += results

	def due_in(self, now: float) -> float:
		return float("inf") if self.since is None else self.since + RECORD_WITHIN_SECONDS - now

	def take(self) -> list[SendResult]:
		results, self.results, self.since = self.results, [], None
		return results


def _names_of(requests) -> list[str]:
	return [e.name for _, events in requests for e in events]


def _group_by(rows: list[dict], key: str) -> dict[str, list[dict]]:
	groups: dict[str, list[dict]] = {}
	for row in rows:
		groups.setdefault(row[key], []).append(row)
	return groups
