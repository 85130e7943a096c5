"""Offline POS sync, the ledger: what a terminal did offline is stored before anything is applied.

Every valid operation goes into the POS Operation ledger in one INSERT, keyed by (terminal, client
id): a replayed operation - even in two pushes racing each other - is stored once and answered
with its original result. The call returns as soon as that is committed; appliers (applier.py)
take it from there.
"""

import datetime
import hashlib
import json

import frappe
from frappe import _
from frappe.utils import convert_utc_to_system_timezone, now_datetime
from frappe.utils.background_jobs import get_job_status
from rq.job import JobStatus

from erp_connect.engine import pos_rules
from erp_connect.services.common import sql

APPLY = "erp_connect.services.pos.applier.apply"
APPLY_JOBS = 4  # apply jobs of one terminal at once, at most: free workers join a big batch

APPLIED, FLAGGED, FAILED, QUEUED, APPLYING = "Applied", "Flagged", "Failed", "Queued", "Applying"
DONE = (APPLIED, FLAGGED)
CLIENT_STATUS = {
	QUEUED: "accepted",
	APPLYING: "accepted",
	APPLIED: "applied",
	FLAGGED: "applied",
	FAILED: "failed",
}
RESULT_FIELDS = ("name", "client_id", "status", "reference_name", "error", "flag", "content_hash")


def operation_key(terminal: str, client_id: str) -> str:
	"""The ledger row's name: unique per terminal and client id, and no terminal can reach
	another's operations by guessing ids."""
	return hashlib.sha256(f"{terminal}\n{client_id}".encode()).hexdigest()[:32]


# -- push ------------------------------------------------------------------------------------------
def push(terminal: "frappe.Document", operations: list) -> dict:
	"""Store the batch's valid operations; per-operation results in the batch's order."""
	results: list = [None] * len(operations)
	valid = []
	for i, op in enumerate(operations):
		problems = pos_rules.problems(op)
		if problems:
			client_id = op.get("client_id") if isinstance(op, dict) else None
			results[i] = {"client_id": client_id, "status": "rejected", "error": "; ".join(problems)}
		else:
			valid.append((i, op))
	_insert_new(terminal.name, [op for _, op in valid])
	stored = _stored(terminal.name, [op["client_id"] for _, op in valid])
	for i, op in valid:
		row = stored[operation_key(terminal.name, op["client_id"])]
		if row.content_hash != pos_rules.content_hash(op):
			results[i] = {
				"client_id": op["client_id"],
				"status": "rejected",
				"error": _("client_id {0} was already used for a different operation").format(
					op["client_id"]
				),
			}
		else:
			results[i] = result_of(row)
	terminal.db_set("last_push_at", now_datetime(), update_modified=False)
	update_counts(terminal.name)
	if any(r["status"] == "accepted" for r in results):
		queue_appliers(terminal.name)
	return {"results": results, "accepted": sum(r["status"] == "accepted" for r in results)}


def _insert_new(terminal: str, operations: list[dict]) -> None:
	"""One INSERT for the batch; a (terminal, client id) already stored is left as it is."""
	if not operations:
		return
	now, user = now_datetime(), frappe.session.user
	rows = []
	for op in operations:
		moment = pos_rules.parse_timestamp(op["timestamp"]).astimezone(datetime.UTC).replace(tzinfo=None)
		rows.append(
			(
				operation_key(terminal, op["client_id"]),
				now,
				now,
				user,
				user,
				terminal,
				op["client_id"],
				op["type"],
				QUEUED,
				convert_utc_to_system_timezone(moment).replace(tzinfo=None),
				now,
				json.dumps(op["data"], separators=(",", ":")),
				",".join(pos_rules.dependencies(op)) or None,
				pos_rules.content_hash(op),
				0,
			)
		)
	sql.insert_rows("POS Operation", OPERATION_COLUMNS, rows, keep_existing=True)


OPERATION_COLUMNS = (
	"name",
	"creation",
	"modified",
	"owner",
	"modified_by",
	"terminal",
	"client_id",
	"op_type",
	"status",
	"client_timestamp",
	"received_at",
	"payload",
	"depends_on",
	"content_hash",
	"attempts",
)


def _stored(terminal: str, client_ids: list[str]) -> dict:
	"""The ledger rows of these ids, as committed now: a locking read, because a racing push of the
	same batch may have committed them after this transaction's snapshot was taken."""
	keys = [operation_key(terminal, c) for c in client_ids] or [""]
	rows = frappe.db.sql(
		"select {} from `tabPOS Operation` where name in %s lock in share mode".format(
			", ".join(RESULT_FIELDS)
		),
		[keys],
		as_dict=True,
	)
	return {r.name: r for r in rows}


def results(terminal: "frappe.Document", client_ids: list[str]) -> dict:
	stored = _stored(terminal.name, client_ids)
	out = []
	for client_id in client_ids:
		row = stored.get(operation_key(terminal.name, client_id))
		out.append(result_of(row) if row else {"client_id": client_id, "status": "unknown"})
	return {"results": out}


def result_of(row) -> dict:
	result = {
		"client_id": row.client_id,
		"status": CLIENT_STATUS[row.status],
		"name": row.reference_name,
		"error": row.error,
	}
	if row.flag:
		result["flag"] = row.flag
	return result


def update_counts(terminal: str) -> None:
	"""The terminal's open, failed and flagged operations, counted on the (terminal, status) index
	without reading the applied ones, which are most of a ledger that only grows."""
	counts = dict(
		frappe.db.sql(
			"""select status, count(*) from `tabPOS Operation`
			where terminal = %s and status in %s group by status""",
			(terminal, (QUEUED, APPLYING, FAILED, FLAGGED)),
		)
	)
	frappe.db.set_value(
		"POS Terminal",
		terminal,
		{
			"backlog": counts.get(QUEUED, 0) + counts.get(APPLYING, 0),
			"failed": counts.get(FAILED, 0),
			"flagged": counts.get(FLAGGED, 0),
		},
		update_modified=False,
	)


def retry(name: str, payload: str | None = None) -> None:
	"""Queue a failed operation again (with corrected data, from Desk)."""
	op = frappe.get_doc("POS Operation", name)
	if op.status != FAILED:
		frappe.throw(_("Only failed operations can be retried; this one is {0}").format(_(op.status)))
	if payload is not None:
		data = json.loads(payload)
		problems = pos_rules.data_problems(op.op_type, data)
		if problems:
			frappe.throw("<br>".join(problems), title=_("The operation is still not valid"))
		op.payload = json.dumps(data, separators=(",", ":"))
	frappe.db.set_value(
		"POS Operation", name, {"status": QUEUED, "error": None, "attempts": 0, "payload": op.payload}
	)
	update_counts(op.terminal)
	queue_appliers(op.terminal)


def queue_appliers(terminal: str) -> None:
	"""Once this transaction commits, make sure an apply job of the terminal is queued."""
	frappe.db.after_commit.add(lambda: ensure_apply_queued(terminal))


def ensure_apply_queued(terminal: str) -> None:
	"""One queued apply job is enough: it claims after what was just committed. A running one is
	not: it may have made its last claim before that commit, so then another slot is queued. (With
	one worker, a job per slot queued up front would each cost a job start that finds nothing,
	and a shift's consolidation waits behind them.) Free workers join a big batch through
	applier.call_in_free_workers."""
	for slot in range(APPLY_JOBS):
		job_id = f"erp_connect:pos:{terminal}:{slot}"
		status = get_job_status(job_id)
		if status == JobStatus.QUEUED:
			return
		if status != JobStatus.STARTED:
			frappe.enqueue(APPLY, queue="default", job_id=job_id, deduplicate=True, terminal=terminal)
			return
	frappe.enqueue(APPLY, queue="default", terminal=terminal)  # every slot is running
