"""Delivery: drain a connector's outbox on Frappe's RQ workers, through the connector's transport
(engine/transports: a webhook receiver, a REST API, another Frappe site, ...).

Several workers on several machines may drain the same connector at once. Claims of one connector
take turns under a database lock (GET_LOCK, shared by every worker that uses the database); each
takes only the oldest unfinished event of each document and is committed as "Sending" with a lease
before anything is sent. So no event is sent twice at the same time, event n+1 of a document waits
until event n is delivered or dead, and the events of a worker that died are claimed again when
their lease runs out. Sending happens outside the lock, in parallel.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import frappe
from frappe.utils import add_to_date, now_datetime

from erp_connect.engine import http, transports, wake
from erp_connect.engine.retry import Outcome, RetryPolicy, capped_wait
from erp_connect.engine.transports import OutboundEvent, Route, SendResult
from erp_connect.erp_connect.doctype.sync_event.sync_event import DOCUMENT_INDEX, UNFINISHED_INDEX
from erp_connect.services.common import alerts, jobs
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.status import DEAD, DELIVERED, RETRYING, SENDING, UNFINISHED, WAITING
from erp_connect.services.push import wake as waking
from erp_connect.services.push.outbox import clear_rules_cache

CLAIM_CHUNK = 200  # events claimed per round: bounds memory however large the backlog
SEND_CONCURRENCY = 8  # requests in flight per drain (different documents only)
MAX_DRAIN_SECONDS = 240  # then hand over to a fresh job, within RQ's default 300 s timeout
IDLE_LOOK_SECONDS = 0.2  # how often a lingering drain looks at the outbox again
POLICY = RetryPolicy()

DUE = """((e.status in %(waiting)s and e.next_attempt_at <= %(now)s)
	or (e.status = %(sending)s and e.lease_until < %(now)s))"""
DUE_VALUES = {"waiting": WAITING, "sending": SENDING, "unfinished": UNFINISHED}

# Walks the primary key (event ids, which start with the time) from the connector's oldest unfinished
# event and stops at the limit, so its cost does not grow with the backlog. An event is a candidate
# only when no earlier event (by seq) of the same document is still unfinished: the per-document order.
CANDIDATES_SQL = f"""
select e.name
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

CLAIM_SQL = f"""
update `tabSync Event` e set e.status = %(sending)s, e.claim_token = %(token)s, e.lease_until = %(lease)s,
	e.modified = %(now)s
where e.name in %(names)s and {DUE}
"""


# -- entry points ----------------------------------------------------------------------------------
def sweep() -> None:
	"""Every minute: drain every connector with due events."""
	for connector in connectors_with_due_events():
		jobs.enqueue_sweep(waking.DRAIN, "sweep", connector, connector=connector)


def connectors_with_due_events() -> list[str]:
	return frappe.db.sql_list(
		f"""select distinct e.connector from `tabSync Event` e
		join `tabConnector` c on c.name = e.connector and c.enabled = 1 and c.dry_run = 0 and c.paused = 0
		where {DUE}""",
		{"now": now_datetime(), **DUE_VALUES},
	)


def drain(connector: str, max_seconds: float = MAX_DRAIN_SECONDS) -> dict:
	"""Deliver everything due for ``connector``; returns counts by outcome."""
	if not frappe.db.exists("Connector", connector):
		return {}  # deleted since the job was queued
	stats = Drainer(connector).run(max_seconds)
	if stats.get("more"):
		frappe.enqueue(waking.DRAIN, queue="default", connector=connector)
	return stats


# -- the drain -------------------------------------------------------------------------------------
class Drainer:
	def __init__(self, connector: str):
		self.connector = frappe.get_doc("Connector", connector)
		self.kind = transports.kind(self.connector.connector_type)
		self.rules = frappe.get_all(
			"Sync Rule",
			{"connector": connector, "enabled": 1, "direction": "Push"},
			["name", "target_path", "http_method", "batch_size"],
		)
		self.timeout = self.connector.timeout_seconds or http.DEFAULT_TIMEOUT_SECONDS
		self.lease_seconds = 3 * self.timeout + 5

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
		self.routes = {
			r.name: Route(r.target_path, r.http_method or "POST", self.transport.batch_size(r.batch_size))
			for r in self.rules
		}
		deadline = time.monotonic() + max_seconds
		linger = wake.Linger(waking.wake_value(name), time.monotonic())
		with ThreadPoolExecutor(SEND_CONCURRENCY) as self.pool:
			while True:
				if time.monotonic() > deadline:
					stats["more"] = True
					break
				waking.keep_awake(name)
				looked_at = time.monotonic()
				claimed = self.claim()
				if claimed is None:
					continue  # another drain holds the claim lock: look again
				token, rows = claimed
				if not rows:
					linger.saw(waking.wake_value(name), time.monotonic())
					if not linger.may_sleep(looked_at):
						time.sleep(min(IDLE_LOOK_SECONDS, linger.wait(time.monotonic())))
						continue
					if waking.sleep_if_no_new_wakeups(name, linger.seen):
						break
					continue  # woken meanwhile: look again
				results = self.send_all(rows)
				self.record(token, results)
				for r in results:
					stats[r.verdict.outcome.value] += len(r.names)
				if backoff_until(name) or any(r.verdict.outcome is Outcome.DISABLE for r in results):
					break  # the receiver asked us to slow down, or a target went away
		return stats

	# -- claiming --------------------------------------------------------------------------------
	def claim(self) -> tuple[str, list[dict]] | None:
		"""Take the next due events, one per document, and commit them as Sending with a lease.
		Claims of one connector take turns under a database lock, which every worker on every
		machine shares; the UPDATE re-checks each row, so a row changed meanwhile is left alone.
		None when the lock was not free within 30 s (nothing was looked at)."""
		token = frappe.generate_hash(length=20)
		with named_lock("claim", self.connector.name, 30) as taken:
			if not taken:
				return None
			now = now_datetime()
			values = {"connector": self.connector.name, "rules": tuple(self.routes), "now": now, **DUE_VALUES}
			start = frappe.db.sql(
				f"""select min(name) from `tabSync Event` force index ({UNFINISHED_INDEX})
				where connector = %(connector)s and status in %(unfinished)s""",
				values,
			)[0][0]
			names = start and frappe.db.sql_list(
				CANDIDATES_SQL, {**values, "start": start, "limit": CLAIM_CHUNK}
			)
			rows = []
			if names:
				lease = add_to_date(now, seconds=self.lease_seconds)
				frappe.db.sql(CLAIM_SQL, {**values, "token": token, "lease": lease, "names": tuple(names)})
				rows = frappe.db.sql(
					"""select name, event_id, sync_rule, payload from `tabSync Event`
					where name in %s and claim_token = %s order by name""",
					(tuple(names), token),
					as_dict=True,
				)
			frappe.db.commit()
		return token, rows

	# -- sending ----------------------------------------------------------------------------------
	def send_all(self, rows: list[dict]) -> list[SendResult]:
		"""Each rule's events in requests of its batch size, in parallel; no frappe in the threads."""
		requests_to_send = []
		for rule, events in _group_by(rows, "sync_rule").items():
			route = self.routes[rule]
			events = [OutboundEvent(e.name, e.event_id, e.payload) for e in events]
			for i in range(0, len(events), route.batch_size):
				requests_to_send.append((route, events[i : i + route.batch_size]))
		return [
			r
			for results in self.pool.map(lambda a: self.transport.send(*a), requests_to_send)
			for r in results
		]

	# -- recording outcomes ---------------------------------------------------------------------------
	def record(self, token: str, results: list[SendResult]) -> None:
		now = now_datetime()
		delivered_by_code: dict[int, list[str]] = {}
		for r in results:
			if r.verdict.outcome is Outcome.DELIVERED:
				delivered_by_code.setdefault(r.status_code, []).extend(r.names)
		for code, names in delivered_by_code.items():
			frappe.db.sql(
				"""update `tabSync Event` set status=%(delivered)s, delivered_at=%(now)s, attempts=attempts+1,
					last_status_code=%(code)s, last_error=null, claim_token=null, lease_until=null, modified=%(now)s
				where name in %(names)s and claim_token=%(token)s""",
				{"delivered": DELIVERED, "now": now, "code": code, "names": tuple(names), "token": token},
			)
		for result in results:
			if result.verdict.outcome is not Outcome.DELIVERED:
				self.record_failure(token, result, now)
		if delivered_by_code and self.connector.failing_since:
			alerts.connector_recovered(self.connector.name)  # the next failure is a new episode
			self.connector.failing_since = None
		frappe.db.commit()

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
		if verdict.retry_after:
			set_backoff(self.connector.name, verdict.retry_after)
		frappe.db.sql(
			"""update `tabSync Event` set status=%(status)s, attempts=%(attempts)s,
				next_attempt_at=coalesce(%(next_attempt_at)s, next_attempt_at),
				last_status_code=%(last_status_code)s, last_response=%(last_response)s, last_error=%(last_error)s,
				claim_token=null, lease_until=null, modified=%(modified)s
			where name in %(names)s and claim_token=%(token)s""",
			{"next_attempt_at": None, **fields, "names": tuple(result.names), "token": token},
		)
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


def _group_by(rows: list[dict], key: str) -> dict[str, list[dict]]:
	groups: dict[str, list[dict]] = {}
	for row in rows:
		groups.setdefault(row[key], []).append(row)
	return groups
