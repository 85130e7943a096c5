"""Waking a connector's drain after a commit, and letting it go back to sleep, without losing a
wake-up (the rule and its proof by simulation: engine/wake.py).

A commit that wrote events increments a per-connector counter in Redis (one round trip). Only
the increment that finds the counter at zero enqueues a drain job; a drain, before it sleeps,
deletes the counter only if it still holds the value it saw - otherwise a new event was committed
meanwhile and it drains again. A drain also stays awake until it has looked at the outbox
wake.LINGER_SECONDS after the last new increment it saw, which lets a process skip the increment
for commits that follow its own within that time. So no wake-up is lost, and neither a busy
connector nor a burst of saves costs a round trip per commit. The counter expires, so a drain
killed with SIGKILL cannot leave it set for long (the sweeper delivers meanwhile).
"""

import time

import frappe
from frappe.utils.background_jobs import get_job_status
from rq.job import JobStatus

from erp_connect.engine import wake

DRAIN = "erp_connect.services.push.delivery.drain"
# RQ's limit for a drain job: its 240 s (delivery.MAX_DRAIN_SECONDS) plus the requests still in flight
# then (connect and read timeouts of up to 300 s each), with room to spare
DRAIN_JOB_TIMEOUT = 900
WAKE_TTL_SECONDS = 120
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
_scripts: dict = {}


# -- the committers' side ---------------------------------------------------------------------------
def wake_after_commit(connector: str) -> None:
	"""Wake ``connector``'s drain once this transaction commits (once per connector)."""
	pending = getattr(frappe.local, "erp_connect_wakeups", None)
	if pending is None:
		pending = frappe.local.erp_connect_wakeups = set()
	if not pending:
		frappe.db.after_commit.add(_wake_pending)
		frappe.db.after_rollback.add(pending.clear)
	pending.add(connector)


def _wake_pending() -> None:
	pending = frappe.local.erp_connect_wakeups
	connectors = sorted(pending)
	pending.clear()
	for connector in connectors:
		wake_drain(connector)


def wake_drain(connector: str) -> None:
	"""Wake ``connector``'s drain (after the commit): enqueue one unless a drain is awake. A drain
	job left "started" by a killed worker does not block it (see _enqueue_drain)."""
	key = wake_key(connector)
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
	timeout = DRAIN_JOB_TIMEOUT
	if frappe.enqueue(
		DRAIN, queue="default", timeout=timeout, job_id=job_id, deduplicate=True, connector=connector
	):
		return
	if get_job_status(job_id) != JobStatus.QUEUED:
		frappe.enqueue(DRAIN, queue="default", timeout=timeout, connector=connector)


# -- the drain's side -----------------------------------------------------------------------------
def wake_key(connector: str) -> str:
	return frappe.cache.make_key(f"erp_connect:wake:{connector}")


def keep_awake(connector: str) -> None:
	"""A drain that is working keeps the counter from expiring under it."""
	frappe.cache.expire(wake_key(connector), WAKE_TTL_SECONDS)


def wake_value(connector: str) -> str:
	value = frappe.cache.get(wake_key(connector))
	return value.decode() if value else ""


def sleep_if_no_new_wakeups(connector: str, seen: str) -> bool:
	"""Clear the counter if it still holds ``seen``; False when a commit woke the drain meanwhile."""
	return bool(_run_script(_DELETE_IF_UNCHANGED, wake_key(connector), seen))


def _run_script(source: str, key: str, arg) -> int:
	"""Run a Lua script by its SHA (the source travels only once per process)."""
	if source not in _scripts:
		_scripts[source] = frappe.cache.register_script(source)
	return _scripts[source](keys=[key], args=[arg], client=frappe.cache)
