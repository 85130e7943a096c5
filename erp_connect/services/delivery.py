"""Delivery: drain a connector's outbox on Frappe's RQ workers.

Several workers on several machines may drain the same connector at once. Claims of one connector
take turns under a database lock (GET_LOCK, shared by every worker that uses the database); each
takes only the oldest unfinished event of each document and is committed as "Sending" with a lease
before anything is sent. So no event is sent twice at the same time, event n+1 of a document waits
until event n is delivered or dead, and the events of a worker that died are claimed again when
their lease runs out. Sending happens outside the lock, in parallel.
"""

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import frappe
import requests
from frappe.utils import add_to_date, now_datetime
from frappe.utils.background_jobs import get_job_status
from rq.job import JobStatus

from erp_connect.engine import frappe_site, http, outbound, wake
from erp_connect.engine.retry import Outcome, RetryPolicy, Verdict, classify_exception, classify_response
from erp_connect.erp_connect.doctype.sync_event.sync_event import DOCUMENT_INDEX, UNFINISHED_INDEX
from erp_connect.services import alerts
from erp_connect.services.outbox import clear_rules_cache

CLAIM_CHUNK = 200  # events claimed per round: bounds memory however large the backlog
SEND_CONCURRENCY = 8  # requests in flight per drain (different documents only)
MAX_DRAIN_SECONDS = 240  # then hand over to a fresh job, within RQ's default 300 s timeout
RESPONSE_EXCERPT = 1000
DRAIN = "erp_connect.services.delivery.drain"
POLICY = RetryPolicy()

DUE = """((e.status in ('Pending', 'Retrying') and e.next_attempt_at <= %(now)s)
	or (e.status = 'Sending' and e.lease_until < %(now)s))"""

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
			and p.status in ('Pending', 'Sending', 'Retrying'))
order by e.name
limit %(limit)s
"""

CLAIM_SQL = f"""
update `tabSync Event` e set e.status = 'Sending', e.claim_token = %(token)s, e.lease_until = %(lease)s,
	e.modified = %(now)s
where e.name in %(names)s and {DUE}
"""


@dataclass
class Target:
	url: str
	method: str
	batch_size: int


@dataclass
class Result:
	names: list[int]
	verdict: Verdict
	status_code: int | None = None
	response: str | None = None


# -- waking a drain -----------------------------------------------------------------------------------
# A commit that wrote events increments a per-connector counter in Redis (one round trip). Only
# the increment that finds the counter at zero enqueues a drain job; a drain, before it sleeps,
# deletes the counter only if it still holds the value it saw - otherwise a new event was committed
# meanwhile and it drains again. A drain also stays awake until it has looked at the outbox
# wake.LINGER_SECONDS after the last new increment it saw, which lets a process skip the increment
# for commits that follow its own within that time (engine/wake.py). So no wake-up is lost, and
# neither a busy connector nor a burst of saves costs a round trip per commit. The counter expires,
# so a drain killed with SIGKILL cannot leave it set for long (the sweeper delivers meanwhile).
WAKE_TTL_SECONDS = 120
IDLE_LOOK_SECONDS = 0.2  # how often a lingering drain looks at the outbox again
_INCR_WITH_TTL = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return v
"""
_DELETE_IF_UNCHANGED = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
_waker = wake.Waker()  # this process's recent increments


def _wake_key(connector: str) -> str:
	return frappe.cache.make_key(f"erp_connect:wake:{connector}")


_scripts: dict = {}


def _run_script(source: str, key: str, arg) -> int:
	"""Run a Lua script by its SHA (the source travels only once per process)."""
	if source not in _scripts:
		_scripts[source] = frappe.cache.register_script(source)
	return _scripts[source](keys=[key], args=[arg], client=frappe.cache)


def kick(connector: str) -> None:
	"""Wake ``connector``'s drain (called after the commit): enqueue one unless a drain is awake.
	A drain job left "started" by a killed worker does not block it (see _enqueue_drain)."""
	key = _wake_key(connector)
	sent_at = time.monotonic()
	if not _waker.due(key, sent_at):
		return  # this process's last increment keeps a drain looking until after this commit
	if _run_script(_INCR_WITH_TTL, key, WAKE_TTL_SECONDS) == 1:
		_enqueue_drain(connector)
	_waker.sent(key, sent_at)


def _enqueue_drain(connector: str) -> None:
	"""One queued drain per connector is enough: it looks at the outbox after this commit. A drain
	that has just gone to sleep but still shows as started is not, so then a job of its own."""
	job_id = f"erp_connect:drain:{connector}"
	if frappe.enqueue(DRAIN, queue="default", job_id=job_id, deduplicate=True, connector=connector):
		return
	if get_job_status(job_id) != JobStatus.QUEUED:
		frappe.enqueue(DRAIN, queue="default", connector=connector)


def _wake_value(connector: str) -> str:
	value = frappe.cache.get(_wake_key(connector))
	return value.decode() if value else ""


def _sleep_if_no_new_wakeups(connector: str, seen: str) -> bool:
	return bool(_run_script(_DELETE_IF_UNCHANGED, _wake_key(connector), seen))


# -- entry points ----------------------------------------------------------------------------------


def sweep() -> None:
	"""Every minute: drain every connector with due events. Uses its own job ids, so a drain job
	left "started" by a killed worker cannot block it."""
	minute = now_datetime().strftime("%Y%m%d%H%M")
	for connector in connectors_with_due_events():
		frappe.enqueue(
			DRAIN,
			queue="default",
			job_id=f"erp_connect:sweep:{connector}:{minute}",
			deduplicate=True,
			connector=connector,
		)


def connectors_with_due_events() -> list[str]:
	now = now_datetime()
	return frappe.db.sql_list(
		"""select distinct e.connector from `tabSync Event` e
		join `tabConnector` c on c.name = e.connector and c.enabled = 1 and c.dry_run = 0 and c.paused = 0
		where (e.status in ('Pending', 'Retrying') and e.next_attempt_at <= %(now)s)
			or (e.status = 'Sending' and e.lease_until < %(now)s)""",
		{"now": now},
	)


def drain(connector: str, max_seconds: float = MAX_DRAIN_SECONDS) -> dict:
	"""Deliver everything due for ``connector``; returns counts by outcome."""
	if not frappe.db.exists("Connector", connector):
		return {}  # deleted since the job was queued
	drainer = Drainer(connector)
	stats = drainer.run(max_seconds)
	if stats.get("more"):
		frappe.enqueue(DRAIN, queue="default", connector=connector)
	return stats


# -- the drain -------------------------------------------------------------------------------------
class Drainer:
	def __init__(self, connector: str):
		self.connector = frappe.get_doc("Connector", connector)
		# another ERPNext site takes one document per request, through its REST API
		self.to_frappe_site = self.connector.connector_type == "Frappe Site"
		self.targets = {
			r.name: Target(
				self.connector.url_for(r.target_path),
				r.http_method or "POST",
				1 if self.to_frappe_site else max(r.batch_size or 1, 1),
			)
			for r in frappe.get_all(
				"Sync Rule",
				{"connector": connector, "enabled": 1, "direction": "Push"},
				["name", "target_path", "http_method", "batch_size"],
			)
		}
		self.timeout = self.connector.timeout_seconds or http.DEFAULT_TIMEOUT_SECONDS
		self.lease_seconds = 3 * self.timeout + 5
		self._local = threading.local()

	def run(self, max_seconds: float) -> dict:
		stats = {o.value: 0 for o in Outcome}
		if (
			not self.connector.enabled
			or self.connector.paused
			or self.connector.dry_run
			or not self.targets
			or backoff_until(self.connector.name)
		):
			return stats
		self.auth_headers = self.connector.auth_headers()
		self.signing_secret = self.connector.secret("signing_secret")
		deadline = time.monotonic() + max_seconds
		linger = wake.Linger(_wake_value(self.connector.name), time.monotonic())
		with ThreadPoolExecutor(SEND_CONCURRENCY) as self.pool:
			while True:
				if time.monotonic() > deadline:
					stats["more"] = True
					break
				frappe.cache.expire(_wake_key(self.connector.name), WAKE_TTL_SECONDS)
				looked_at = time.monotonic()
				claimed = self.claim()
				if claimed is None:
					continue  # another drain holds the claim lock: look again
				token, rows = claimed
				if not rows:
					linger.saw(_wake_value(self.connector.name), time.monotonic())
					if not linger.may_sleep(looked_at):
						time.sleep(min(IDLE_LOOK_SECONDS, linger.wait(time.monotonic())))
						continue
					if _sleep_if_no_new_wakeups(self.connector.name, linger.seen):
						break
					continue  # woken meanwhile: look again
				results = self.send_all(rows)
				self.record(token, results)
				for r in results:
					stats[r.verdict.outcome.value] += len(r.names)
				if backoff_until(self.connector.name) or any(
					r.verdict.outcome is Outcome.DISABLE for r in results
				):
					break  # the receiver asked us to slow down, or a target went away
		return stats

	# -- claiming --------------------------------------------------------------------------------
	def claim(self) -> tuple[str, list[dict]] | None:
		"""Take the next due events, one per document, and commit them as Sending with a lease.
		Claims of one connector take turns under a database lock, which every worker on every
		machine shares; the UPDATE re-checks each row, so a row changed meanwhile is left alone.
		None when the lock was not free within 30 s (nothing was looked at)."""
		token = frappe.generate_hash(length=20)
		lock_name = "erp_connect_claim_" + hashlib.sha1(self.connector.name.encode()).hexdigest()[:32]
		if not frappe.db.sql("select get_lock(%s, 30)", lock_name)[0][0]:
			return None
		try:
			now = now_datetime()
			values = {"connector": self.connector.name, "rules": tuple(self.targets), "now": now}
			start = frappe.db.sql(
				f"""select min(name) from `tabSync Event` force index ({UNFINISHED_INDEX})
				where connector = %(connector)s and status in ('Pending', 'Retrying', 'Sending')""",
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
		finally:
			frappe.db.sql("select release_lock(%s)", lock_name)
		return token, rows

	# -- sending ----------------------------------------------------------------------------------
	def send_all(self, rows: list[dict]) -> list[Result]:
		requests_to_send = []
		for rule, events in _group_by(rows, "sync_rule").items():
			target = self.targets[rule]
			for i in range(0, len(events), target.batch_size):
				requests_to_send.append((target, events[i : i + target.batch_size]))
		return list(self.pool.map(lambda args: self.send(*args), requests_to_send))

	def send(self, target: Target, events: list[dict]) -> Result:
		"""One HTTP request for one event or a batch; runs in a pool thread, so no frappe here."""
		names = [e.name for e in events]
		if self.to_frappe_site:
			return self.send_to_frappe_site(events[0])
		if target.batch_size == 1:  # a rule with batching always sends the batch shape
			msg_id, body = events[0].event_id, events[0].payload
		else:
			msg_id = outbound.batch_id([e.event_id for e in events])
			body = outbound.batch_body([e.payload for e in events])
		body_bytes = body.encode()
		headers = outbound.request_headers(msg_id, body_bytes, self.signing_secret, self.auth_headers)
		try:
			response = self._request(target.method, target.url, body_bytes, headers)
		except (requests.RequestException, http.BlockedTargetError, OSError) as e:
			return Result(names, classify_exception(e))
		return self._result(names, response)

	def send_to_frappe_site(self, event: dict) -> Result:
		"""Update the document on the other site, or create it there when it answers 404."""
		attempts = frappe_site.requests_for(json.loads(event.payload))
		headers = outbound.request_headers(event.event_id, b"", None, self.auth_headers)
		try:
			for method, path, body in attempts:
				response = self._request(method, self.connector.url_for(path), body, headers)
				if response.status != 404:
					break
		except (requests.RequestException, http.BlockedTargetError, OSError) as e:
			return Result([event.name], classify_exception(e))
		if method == "DELETE" and response.status == 404:
			return Result([event.name], classify_response(200), 404, "already deleted there")
		return self._result([event.name], response)

	def _request(self, method: str, url: str, body: bytes | None, headers: dict) -> http.Response:
		return http.send(
			method,
			url,
			body=body,
			headers=headers,
			timeout=self.timeout,
			allow_private=bool(self.connector.allow_private_network),
			session=self._session(),
		)

	def _result(self, names: list, response: http.Response) -> Result:
		excerpt = response.body[:RESPONSE_EXCERPT].decode("utf-8", "replace")
		return Result(names, classify_response(response.status, response.headers), response.status, excerpt)

	def _session(self) -> requests.Session:
		if not hasattr(self._local, "session"):
			self._local.session = requests.Session()
		return self._local.session

	# -- recording outcomes ---------------------------------------------------------------------------
	def record(self, token: str, results: list[Result]) -> None:
		now = now_datetime()
		delivered_by_code: dict[int, list[int]] = {}
		for r in results:
			if r.verdict.outcome is Outcome.DELIVERED:
				delivered_by_code.setdefault(r.status_code, []).extend(r.names)
		for code, names in delivered_by_code.items():
			frappe.db.sql(
				"""update `tabSync Event` set status='Delivered', delivered_at=%(now)s, attempts=attempts+1,
					last_status_code=%(code)s, last_error=null, claim_token=null, lease_until=null, modified=%(now)s
				where name in %(names)s and claim_token=%(token)s""",
				{"now": now, "code": code, "names": tuple(names), "token": token},
			)
		for result in results:
			if result.verdict.outcome is not Outcome.DELIVERED:
				self.record_failure(token, result, now)
		if delivered_by_code and self.connector.failing_since:
			alerts.connector_recovered(self.connector.name)  # the next failure is a new episode
			self.connector.failing_since = None
		frappe.db.commit()

	def record_failure(self, token: str, result: Result, now) -> None:
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
			fields.update(status="Retrying", next_attempt_at=add_to_date(now, seconds=delay))
		else:
			if verdict.outcome is Outcome.RETRY:
				fields["last_error"] = f"gave up after {attempts} attempts: {verdict.reason}"
			fields["status"] = "Dead"
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
		elif fields["status"] == "Dead":
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
	until = time.time() + seconds
	frappe.cache.set_value(_backoff_key(connector), until, expires_in_sec=max(int(seconds) + 1, 1))


def backoff_until(connector: str) -> float | None:
	until = frappe.cache.get_value(_backoff_key(connector), expires=True)
	return until if until and until > time.time() else None


def _group_by(rows: list[dict], key: str) -> dict[str, list[dict]]:
	groups: dict[str, list[dict]] = {}
	for row in rows:
		groups.setdefault(row[key], []).append(row)
	return groups
