"""Offline POS sync: what a terminal did offline is stored in a ledger first and applied in the
background.

Push. Every valid operation goes into the POS Operation ledger in one INSERT, keyed by
(terminal, client id): a replayed operation - even in two pushes racing each other - is stored once
and answered with its original result. The call returns as soon as that is committed.

Apply. RQ jobs claim queued operations in the terminal's order (only those whose offline
dependencies are applied) and apply each in its own transaction together with its ledger row, so
a worker killed half-way leaves the operation queued for the next claim (its lease runs out) -
never half-applied, never applied twice.
"""

import datetime
import hashlib
import json
import time

import frappe
from frappe import _
from frappe.model.naming import NamingSeries, get_default_naming_series, parse_naming_series
from frappe.utils import add_to_date, cint, convert_utc_to_system_timezone, now_datetime

from erp_connect.engine import pos
from erp_connect.services import correlation
from erp_connect.services.upsert import describe

CLAIM_CHUNK = 10  # operations per claim: small, so several workers share a big batch
CLAIM_WINDOW = 500  # queued operations looked at per claim (those waiting on others are skipped)
LEASE_SECONDS = 300
MAX_APPLY_SECONDS = 240  # then hand over to a fresh job, within RQ's default timeout
APPLY_JOBS = 4  # parallel apply jobs per terminal: as many RQ workers as are free take part
MAX_TRANSIENT_ATTEMPTS = 5  # deadlocks and lock waits are retried, then the operation fails

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


class StockShortfall(frappe.ValidationError):
	pass


class DependencyFailed(frappe.ValidationError):
	pass


class DependencyPending(Exception):
	"""Another operation this one needs is not applied yet: try again later."""


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
		problems = pos.problems(op)
		if problems:
			client_id = op.get("client_id") if isinstance(op, dict) else None
			results[i] = {"client_id": client_id, "status": "rejected", "error": "; ".join(problems)}
		else:
			valid.append((i, op))
	_insert_new(terminal.name, [op for _, op in valid])
	stored = _stored(terminal.name, [op["client_id"] for _, op in valid])
	for i, op in valid:
		row = stored[operation_key(terminal.name, op["client_id"])]
		if row.content_hash != pos.content_hash(op):
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
		kick(terminal.name)
	return {"results": results, "accepted": sum(r["status"] == "accepted" for r in results)}


def _insert_new(terminal: str, operations: list[dict]) -> None:
	"""One INSERT for the batch; a (terminal, client id) already stored is left as it is."""
	if not operations:
		return
	now, user = now_datetime(), frappe.session.user
	rows = []
	for op in operations:
		moment = pos.parse_timestamp(op["timestamp"]).astimezone(datetime.UTC).replace(tzinfo=None)
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
				",".join(pos.dependencies(op)) or None,
				pos.content_hash(op),
				0,
			)
		)
	row_sql = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
	frappe.db.sql(
		"""insert into `tabPOS Operation` (name, creation, modified, owner, modified_by, terminal,
			client_id, op_type, status, client_timestamp, received_at, payload, depends_on, content_hash,
			attempts)
		values {} on duplicate key update name = name""".format(", ".join([row_sql] * len(rows))),
		[value for row in rows for value in row],
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
	counts = dict(
		frappe.db.sql(
			"select status, count(*) from `tabPOS Operation` where terminal = %s group by status", terminal
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


# -- waking the appliers -----------------------------------------------------------------------------
def kick(terminal: str) -> None:
	"""Several apply jobs per terminal (each a distinct, deduplicated job id), so every free
	worker can take part in a big batch."""
	for slot in range(APPLY_JOBS):
		frappe.enqueue(
			"erp_connect.services.pos.apply",
			queue="default",
			job_id=f"erp_connect:pos:{terminal}:{slot}",
			deduplicate=True,
			enqueue_after_commit=True,
			terminal=terminal,
		)


def sweep() -> None:
	"""Every minute: wake the terminals with operations still to apply (a killed worker's too)."""
	now = now_datetime()
	for terminal in frappe.db.sql_list(
		"""select distinct terminal from `tabPOS Operation`
		where status = 'Queued' or (status = 'Applying' and lease_until < %s)""",
		now,
	):
		minute = now.strftime("%Y%m%d%H%M")
		frappe.enqueue(
			"erp_connect.services.pos.apply",
			queue="default",
			job_id=f"erp_connect:pos-sweep:{terminal}:{minute}",
			deduplicate=True,
			terminal=terminal,
		)


# -- apply -------------------------------------------------------------------------------------------
def apply(terminal: str, max_seconds: float = MAX_APPLY_SECONDS) -> dict:
	"""Apply claimable operations of ``terminal`` until none is left; returns counts by status."""
	counts: dict = {}
	if not frappe.db.exists("POS Terminal", terminal):
		return counts  # deleted since the job was queued
	term = frappe.get_doc("POS Terminal", terminal)
	if not term.enabled:
		return counts
	caller = frappe.session.user
	frappe.set_user(term.api_user)  # the terminal's user writes: Frappe's permissions apply
	deadline = time.monotonic() + max_seconds
	try:
		while True:
			if time.monotonic() > deadline:
				frappe.enqueue("erp_connect.services.pos.apply", queue="default", terminal=terminal)
				break
			token, names = claim(terminal)
			if not names:
				break
			for name in names:
				status = apply_one(term, name, token)
				counts[status] = counts.get(status, 0) + 1
	finally:
		frappe.set_user(caller)
		update_counts(terminal)
		frappe.db.commit()
	return counts


def claim(terminal: str) -> tuple[str, list[str]]:
	"""Take the next operations whose dependencies are settled, oldest first, and commit them as
	Applying with a lease. Claims of one terminal take turns under a database lock."""
	token = frappe.generate_hash(length=20)
	lock = "erp_connect_pos_" + hashlib.sha1(terminal.encode()).hexdigest()[:32]
	if not frappe.db.sql("select get_lock(%s, 30)", lock)[0][0]:
		return token, []
	try:
		now = now_datetime()
		candidates = frappe.db.sql(
			"""select name, depends_on from `tabPOS Operation`
			where terminal = %(terminal)s
				and (status = 'Queued' or (status = 'Applying' and lease_until < %(now)s))
			order by client_timestamp, client_id
			limit %(window)s""",
			{"terminal": terminal, "now": now, "window": CLAIM_WINDOW},
			as_dict=True,
		)
		settled = _settled_dependencies(terminal, candidates)
		names = [
			c.name for c in candidates if all(d in settled for d in (c.depends_on or "").split(",") if d)
		][:CLAIM_CHUNK]
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
			reserve_document_names(token)
		frappe.db.commit()
	finally:
		frappe.db.sql("select release_lock(%s)", lock)
	return token, names


def reserve_document_names(token: str) -> None:
	"""Give each claimed operation that creates a series-named document its name now, in this
	short transaction. Otherwise every apply would hold the naming series' row lock for the whole
	of its insert and submit, and parallel workers would take turns instead of working together."""
	rows = frappe.get_all(
		"POS Operation",
		{"claim_token": token, "reserved_name": ("is", "not set"), "op_type": ("in", list(SERIES_NAMED))},
		["name", "op_type"],
		order_by="client_timestamp, client_id",
	)
	for op_type, doctype in SERIES_NAMED.items():
		ops = [r.name for r in rows if r.op_type == op_type]
		for op, reserved in zip(ops, reserve_names(doctype, len(ops)), strict=True):
			frappe.db.set_value("POS Operation", op, "reserved_name", reserved, update_modified=False)


def reserve_names(doctype: str, count: int) -> list[str]:
	"""``count`` consecutive names of ``doctype``'s default naming series, in one update."""
	if not count:
		return []
	series = NamingSeries(get_default_naming_series(doctype) or "")
	prefix = series.get_prefix()
	current = frappe.db.sql("select current from `tabSeries` where name = %s for update", prefix)
	if current:
		frappe.db.sql("update `tabSeries` set current = current + %s where name = %s", (count, prefix))
		first = cint(current[0][0]) + 1
	else:
		frappe.db.sql("insert into `tabSeries` (name, current) values (%s, %s)", (prefix, count))
		first = 1
	numbers = iter(range(first, first + count))
	return [
		parse_naming_series(
			series.series,
			doctype=doctype,
			number_generator=lambda _, digits: str(next(numbers)).zfill(digits),
		)
		for _ in range(count)
	]


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


def apply_one(term: "frappe.Document", name: str, token: str) -> str:
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
			doctype, docname, flag = APPLIERS[op.op_type](term, json.loads(op.payload), op)
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


def retry(name: str, payload: str | None = None) -> None:
	"""Queue a failed operation again (with corrected data, from Desk)."""
	op = frappe.get_doc("POS Operation", name)
	if op.status != FAILED:
		frappe.throw(_("Only failed operations can be retried; this one is {0}").format(_(op.status)))
	if payload is not None:
		data = json.loads(payload)
		problems = pos.data_problems(op.op_type, data)
		if problems:
			frappe.throw("<br>".join(problems), title=_("The operation is still not valid"))
		op.payload = json.dumps(data, separators=(",", ":"))
	frappe.db.set_value(
		"POS Operation", name, {"status": QUEUED, "error": None, "attempts": 0, "payload": op.payload}
	)
	update_counts(op.terminal)
	kick(op.terminal)


# -- the operations ------------------------------------------------------------------------------------
def apply_customer(term, data: dict, op) -> tuple[str, str, None]:
	settings = frappe.get_cached_doc("Selling Settings")
	doc = frappe.get_doc(
		{
			"doctype": "Customer",
			"customer_name": data["customer_name"],
			"customer_type": "Individual",
			"customer_group": settings.customer_group or "All Customer Groups",
			"territory": settings.territory or "All Territories",
			**{k: data[k] for k in ("mobile_no", "email_id") if data.get(k)},
		}
	)
	doc.flags.erp_connect_origin = term.connector  # not pushed back to where it came from
	doc.insert()
	return "Customer", doc.name, None


def apply_sales_invoice(term, data: dict, op) -> tuple[str, str, str | None]:
	posting = op.client_timestamp
	customer = data.get("customer")
	if data.get("customer_client_id"):
		customer = done_dependency(term.name, data["customer_client_id"])
	customer = customer or frappe.get_cached_value("POS Profile", term.pos_profile, "customer")
	if not customer:
		frappe.throw(
			_("the sale names no customer and POS Profile {0} has no default customer").format(
				term.pos_profile
			)
		)
	require_existing("Customer", [customer])
	require_existing("Item", [line["item_code"] for line in data["items"]])
	invoice = frappe.get_doc(
		{
			"doctype": "Sales Invoice",
			"company": term.company,
			"customer": customer,
			"is_pos": 1,
			"pos_profile": term.pos_profile,
			"update_stock": 1,
			"set_warehouse": term.warehouse,
			"selling_price_list": term.price_list,
			"set_posting_time": 1,
			"posting_date": posting.date(),
			"posting_time": posting.time(),
			"is_return": 1 if data.get("is_return") else 0,
			"return_against": data.get("return_against")
			or (data.get("is_return") and done_dependency(term.name, data.get("return_against_client_id")))
			or None,
			"items": [
				{
					"warehouse": term.warehouse,
					**{k: line[k] for k in ("item_code", "qty", "rate", "uom") if k in line},
				}
				for line in data["items"]
			],
			"payments": data.get("payments") or [],
			"remarks": _("POS terminal {0}, operation {1}").format(term.name, op.client_id),
		}
	)
	invoice.flags.erp_connect_origin = term.connector
	invoice.insert(set_name=op.reserved_name)
	return "Sales Invoice", invoice.name, submit_with_stock_policy(term, invoice)


def apply_stock_adjustment(term, data: dict, op) -> tuple[str, str, str | None]:
	receipt = data["qty"] > 0
	require_existing("Item", [data["item_code"]])
	item = frappe.get_cached_value(
		"Item", data["item_code"], ["valuation_rate", "standard_rate"], as_dict=True
	)
	entry = frappe.get_doc(
		{
			"doctype": "Stock Entry",
			"company": term.company,
			"stock_entry_type": "Material Receipt" if receipt else "Material Issue",
			"set_posting_time": 1,
			"posting_date": op.client_timestamp.date(),
			"posting_time": op.client_timestamp.time(),
			"remarks": data.get("reason") or _("POS terminal {0} stock adjustment").format(term.name),
			"items": [
				{
					"item_code": data["item_code"],
					"qty": abs(data["qty"]),
					("t_warehouse" if receipt else "s_warehouse"): term.warehouse,
					"basic_rate": item.valuation_rate or item.standard_rate or 0,
					"allow_zero_valuation_rate": 0 if (item.valuation_rate or item.standard_rate) else 1,
				}
			],
		}
	)
	entry.flags.erp_connect_origin = term.connector
	entry.insert(set_name=op.reserved_name)
	return "Stock Entry", entry.name, submit_with_stock_policy(term, entry)


SERIES_NAMED = {pos.SALES_INVOICE: "Sales Invoice", pos.STOCK_ADJUSTMENT: "Stock Entry"}
APPLIERS = {
	pos.CUSTOMER: apply_customer,
	pos.SALES_INVOICE: apply_sales_invoice,
	pos.STOCK_ADJUSTMENT: apply_stock_adjustment,
}


def require_existing(doctype: str, names: list[str]) -> None:
	"""A clear message for a name the terminal got wrong, before ERPNext trips over it."""
	found = set(frappe.get_all(doctype, {"name": ("in", names)}, pluck="name"))
	missing = sorted(set(names) - found)
	if missing:
		frappe.throw(
			_("{0} {1} does not exist").format(_(doctype), ", ".join(missing)), frappe.DoesNotExistError
		)


def done_dependency(terminal: str, client_id: str | None) -> str:
	"""The document an earlier offline operation of this terminal created."""
	row = frappe.db.get_value(
		"POS Operation",
		operation_key(terminal, client_id or ""),
		["status", "reference_name", "error"],
		as_dict=True,
	)
	if not row:
		raise DependencyPending(_("operation {0} has not arrived yet").format(client_id))
	if row.status == FAILED:
		raise DependencyFailed(_("operation {0} failed: {1}").format(client_id, row.error))
	if row.status not in DONE:
		raise DependencyPending(_("operation {0} is not applied yet").format(client_id))
	return row.reference_name


# -- stock ------------------------------------------------------------------------------------------
def submit_with_stock_policy(term, doc) -> str | None:
	"""Submit, applying the terminal's stock policy when the stock sold or issued is not there.
	Returns the flag to record, or None. "Block" fails the operation (kept for review); the
	"Accept" policies let stock go negative for this document only - what ERPNext's Allow Negative
	Stock does for everything - and flag it."""
	from erpnext.stock.stock_ledger import NegativeStockError

	short = shortfalls(doc, term.warehouse)
	if short and term.stock_policy == "Block":
		raise StockShortfall(_("not enough stock: {0}").format(short))
	frappe.db.savepoint("erp_connect_pos_submit")
	try:
		if short:
			allow_negative_stock(doc)
		doc.submit()
	except NegativeStockError as e:
		# the stock was not there at the document's posting time (an earlier sale took it, or
		# another sale took it between the check and the submit)
		frappe.db.rollback(save_point="erp_connect_pos_submit")
		short = short or frappe.utils.strip_html(str(e))
		if term.stock_policy == "Block":
			raise StockShortfall(_("not enough stock: {0}").format(short))
		doc = frappe.get_doc(doc.doctype, doc.name)
		doc.flags.erp_connect_origin = term.connector
		allow_negative_stock(doc)
		doc.submit()
	if not short:
		return None
	flag = _("stock shortfall at {0}: {1}").format(term.warehouse, short)
	if term.stock_policy == "Accept and Reconcile":
		reconciliation_task(term, doc, flag)
	return flag


def shortfalls(doc, warehouse: str) -> str:
	"""'ITEM needs 3, has 1; …' for the stock items this document takes out of ``warehouse``."""
	needed: dict[str, float] = {}
	for row in doc.items:
		qty = row.get("stock_qty") or row.get("transfer_qty") or row.qty
		leaving = (doc.doctype == "Sales Invoice" and not doc.is_return) or row.get("s_warehouse")
		if leaving and qty > 0:
			needed[row.item_code] = needed.get(row.item_code, 0) + qty
	stock_items = set(
		frappe.get_all("Item", {"name": ("in", list(needed) or [""]), "is_stock_item": 1}, pluck="name")
	)
	short = []
	for item_code, qty in needed.items():
		if item_code not in stock_items:
			continue
		have = frappe.db.get_value("Bin", {"item_code": item_code, "warehouse": warehouse}, "actual_qty") or 0
		if have < qty:
			short.append(_("{0} needs {1}, has {2}").format(item_code, qty, have))
	return "; ".join(short)


def allow_negative_stock(doc) -> None:
	"""For this one document, post its stock ledger as ERPNext does with Allow Negative Stock."""
	post = doc.update_stock_ledger if doc.doctype == "Sales Invoice" else None
	if post:
		doc.update_stock_ledger = lambda allow_negative_stock=False: post(allow_negative_stock=True)
	else:
		make_sl_entries = doc.make_sl_entries
		doc.make_sl_entries = lambda sl_entries, allow_negative_stock=False, **kw: make_sl_entries(
			sl_entries, allow_negative_stock=True, **kw
		)


def reconciliation_task(term, doc, flag: str) -> None:
	owners = frappe.get_all(
		"Has Role",
		{"role": "Stock Manager", "parenttype": "User", "parent": ("!=", "Administrator")},
		pluck="parent",
	)
	frappe.get_doc(
		{
			"doctype": "ToDo",
			"allocated_to": owners[0] if owners else "Administrator",
			"reference_type": doc.doctype,
			"reference_name": doc.name,
			"description": _("Reconcile stock: {0} (terminal {1})").format(flag, term.name),
			"priority": "High",
		}
	).insert(ignore_permissions=True)  # a task for a person, whoever the terminal's user is
