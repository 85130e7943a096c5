"""Offline POS sync, applying: RQ jobs claim queued operations in the terminal's order (only
those whose offline dependencies are settled) and apply each in its own transaction together with
its ledger row, so a worker killed half-way leaves the operation queued for the next claim (its
lease runs out) - never half-applied, never applied twice.
"""

import json
import time

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime
from frappe.utils.background_jobs import get_queue
from rq import Worker
from rq.worker import WorkerStatus

from erp_connect.engine.pos_rules import BARRIERS
from erp_connect.services.common import correlation, jobs
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.inbound.upsert import describe
from erp_connect.services.pos import shifts
from erp_connect.services.pos.documents import DependencyPending
from erp_connect.services.pos.ledger import (
	APPLIED,
	APPLY,
	APPLYING,
	DONE,
	FAILED,
	FLAGGED,
	QUEUED,
	ensure_apply_queued,
	operation_key,
	update_counts,
)
from erp_connect.services.pos.naming import reserve_document_names

CLAIM_CHUNK = 10  # operations per claim: small, so several workers share a big batch
CLAIM_WINDOW = 500  # queued operations looked at per claim (those waiting on others are skipped)
LEASE_SECONDS = 300
MAX_APPLY_SECONDS = 240  # then hand over to a fresh job, within RQ's default timeout
MAX_TRANSIENT_ATTEMPTS = 5  # deadlocks and lock waits are retried, then the operation fails


def sweep() -> None:
	"""Every minute: wake the terminals with operations still to apply (a killed worker's too)."""
	for terminal in frappe.db.sql_list(
		"""select distinct terminal from `tabPOS Operation`
		where status = %s or (status = %s and lease_until < %s)""",
		(QUEUED, APPLYING, now_datetime()),
	):
		jobs.enqueue_sweep(APPLY, "pos-sweep", terminal, terminal=terminal)
	shifts.sweep()


def apply(terminal: str, max_seconds: float = MAX_APPLY_SECONDS) -> dict:
	"""Apply claimable operations of ``terminal`` until none is left; returns counts by status."""
	counts: dict = {}
	if not frappe.db.exists("POS Terminal", terminal):
		return counts  # deleted since the job was queued
	term = frappe.get_doc("POS Terminal", terminal)
	if not term.enabled:
		return counts
	deadline = time.monotonic() + max_seconds
	try:
		# the terminal's checked user writes: Frappe's permissions apply; a user that fails the
		# check leaves every operation queued, and the job fails with the reason
		with run_as_api_user(term.api_user, _("POS Terminal {0}").format(terminal)):
			while True:
				if time.monotonic() > deadline:
					frappe.enqueue(APPLY, queue="default", terminal=terminal)
					break
				token, names = claim(terminal, shifts.series_named(term))
				if not names:
					break
				if len(names) == CLAIM_CHUNK:  # there may be more than this job will get to soon
					call_in_free_workers(terminal)
				appliers = shifts.appliers(term)
				for name in names:
					status = apply_one(term, name, token, appliers)
					counts[status] = counts.get(status, 0) + 1
	finally:
		update_counts(terminal)
		frappe.db.commit()
	return counts


def call_in_free_workers(terminal: str) -> None:
	"""Queue another apply job of the terminal while a worker is idle to take it."""
	queue = get_queue("default")
	if any(worker.get_state() == WorkerStatus.IDLE for worker in Worker.all(queue=queue)):
		ensure_apply_queued(terminal)


def claim(terminal: str, series_named: dict) -> tuple[str, list[str]]:
	"""Take the next operations whose dependencies are settled, oldest first, and commit them as
	Applying with a lease. Claims of one terminal take turns under a database lock."""
	token = frappe.generate_hash(length=20)
	with named_lock("pos", terminal, 30) as taken:
		if not taken:
			return token, []
		now = now_datetime()
		candidates = frappe.db.sql(
			"""select name, depends_on, op_type, client_timestamp, client_id from `tabPOS Operation`
			where terminal = %(terminal)s
				and (status = 'Queued' or (status = 'Applying' and lease_until < %(now)s))
			order by client_timestamp, client_id
			limit %(window)s""",
			{"terminal": terminal, "now": now, "window": CLAIM_WINDOW},
			as_dict=True,
		)
		names = _claimable(terminal, candidates, now)
		if names:
			frappe.db.sql(
				"""update `tabPOS Operation` set status = 'Applying', claim_token = %(token)s,
					lease_until = %(lease)s, modified = %(now)s
				where name in %(names)s
					and (status = 'Queued' or (status = 'Applying' and lease_until < %(now)s))""",
				{
					"token": token,
					"lease": add_to_date(now, seconds=LEASE_SECONDS),
					"now": now,
					"names": names,
				},
			)
			reserve_document_names(token, series_named)
		frappe.db.commit()
	return token, names


def _claimable(terminal: str, candidates: list[dict], now) -> list[str]:
	"""The candidates whose dependencies are settled, up to a chunk. A barrier (a shift's close) is
	taken alone, once nothing recorded before it is still to be applied; nothing recorded after a
	barrier is taken before the barrier is applied."""
	settled = _settled_dependencies(terminal, candidates)
	applying = frappe.db.sql(
		"""select op_type, client_timestamp, client_id from `tabPOS Operation`
		where terminal = %s and status = 'Applying' and lease_until >= %s""",
		(terminal, now),
		as_dict=True,
	)
	if any(row.op_type in BARRIERS for row in applying):
		return []
	names = []
	for i, c in enumerate(candidates):
		ready = all(d in settled for d in (c.depends_on or "").split(",") if d)
		if c.op_type in BARRIERS:
			position = (c.client_timestamp, c.client_id)
			alone = i == 0 and all((r.client_timestamp, r.client_id) > position for r in applying)
			return [c.name] if ready and alone else names
		if ready:
			names.append(c.name)
			if len(names) == CLAIM_CHUNK:
				break
	return names


def _settled_dependencies(terminal: str, candidates: list[dict]) -> set[str]:
	"""The client ids, among the candidates' dependencies, whose operations are finished
	(applied, flagged or failed: a failed one fails its dependants with a clear message)."""
	needed = {d for c in candidates for d in (c.depends_on or "").split(",") if d}
	if not needed:
		return set()
	return set(
		frappe.get_all(
			"POS Operation",
			{
				"name": ("in", [operation_key(terminal, d) for d in needed]),
				"status": ("in", (*DONE, FAILED)),
			},
			pluck="client_id",
		)
	)


def apply_one(term: "frappe.Document", name: str, token: str, appliers: dict) -> str:
	"""Apply one claimed operation and record the outcome in the same transaction."""
	op = frappe.db.get_value(
		"POS Operation",
		name,
		[
			"name",
			"client_id",
			"op_type",
			"payload",
			"client_timestamp",
			"attempts",
			"claim_token",
			"reserved_name",
		],
		as_dict=True,
	)
	if op.claim_token != token:
		return "lost"  # its lease ran out and another worker took it
	values = {"attempts": op.attempts + 1, "claim_token": None, "lease_until": None, "error": None}
	try:
		with correlation.correlated(name):  # the events its documents cause point back here
			doctype, docname, flag = appliers[op.op_type](term, json.loads(op.payload), op)
		status = FLAGGED if flag else APPLIED
		values.update(
			status=status,
			reference_doctype=doctype,
			reference_name=docname,
			flag=flag,
			applied_at=now_datetime(),
		)
	except Exception as e:
		frappe.db.rollback()
		transient = isinstance(e, frappe.QueryDeadlockError | frappe.QueryTimeoutError | DependencyPending)
		status = QUEUED if transient and op.attempts + 1 < MAX_TRANSIENT_ATTEMPTS else FAILED
		values.update(status=status, error=describe(e))
	finally:
		frappe.local.message_log = []
	if not _record(name, token, values):
		frappe.db.rollback()  # another worker owns it now: what was written here is undone
		return "lost"
	frappe.db.commit()
	return status


def _record(name: str, token: str, values: dict) -> bool:
	assignments = ", ".join(f"`{k}` = %({k})s" for k in values)
	frappe.db.sql(
		f"""update `tabPOS Operation` set {assignments}, modified = %(now)s
		where name = %(name)s and claim_token = %(token)s""",
		{**values, "now": now_datetime(), "name": name, "token": token},
	)
	return bool(frappe.db.sql("select row_count()")[0][0])
