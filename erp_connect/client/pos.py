"""Offline-first client for the erp_connect POS API (``erp_connect.api.pos``).

A POS terminal or mobile app records customers, sales, returns and stock adjustments into a local
SQLite outbox without touching the network, and syncs whenever it can. A terminal that books POS
Invoices with shifts also opens and closes its shift offline (open_shift, close_shift); every sale
recorded while a shift is open names it.

- push: sends pending operations oldest first, at most 500 per call. The server is idempotent by
  client_id, so anything the client is unsure about (a dropped connection, a crash) is simply sent again;
- poll: asks for the outcome of operations the server accepted but has not applied yet;
- pull: copies master data (items, prices, customers, stock) into local tables page by page, saving the
  cursor in the same transaction as the page.

Transient failures (timeouts, dropped connections, 408/425/429/5xx) start a backoff that is stored in
SQLite, so a restarted app keeps it. 401/403 raise AuthError and leave the outbox untouched.

Pure Python: the standard library and requests, no Frappe.
"""

import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import datetime, timezone

import requests

API_PATH = "/api/method/erp_connect.api.pos."
MAX_BATCH = 500  # the server refuses larger pushes
PENDING, ACCEPTED = "pending", "accepted"
FINAL_STATUSES = frozenset({"applied", "failed", "review", "rejected"})
SERVER_STATUSES = FINAL_STATUSES | {ACCEPTED}
AUTH_STATUSES = frozenset({401, 403})
TRANSIENT_STATUSES = frozenset({408, 425, 429})  # and every 5xx
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
# Each delay is shortened by up to 20 % so terminals that lost the network together do not return together
BACKOFF_JITTER = 0.2

# record type -> (local table, columns copied out of `data` so they can be queried)
MASTER_TABLES = {
	"item": ("items", ("item_code", "item_name", "disabled")),
	"price": ("prices", ("item_code", "uom", "price_list_rate")),
	"customer": ("customers", ("name", "customer_name", "disabled")),
	"stock": ("stock", ("item_code", "actual_qty")),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
	client_id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL UNIQUE,
	type TEXT NOT NULL,
	timestamp TEXT NOT NULL,
	data TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT 'pending',
	name TEXT,
	error TEXT,
	attempts INTEGER NOT NULL DEFAULT 0,
	updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox (status, seq);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
	key TEXT PRIMARY KEY, item_code TEXT, item_name TEXT, disabled INTEGER, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS item_barcodes (barcode TEXT PRIMARY KEY, item_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS prices (
	key TEXT PRIMARY KEY, item_code TEXT, uom TEXT, price_list_rate REAL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS prices_item ON prices (item_code);
CREATE TABLE IF NOT EXISTS customers (
	key TEXT PRIMARY KEY, name TEXT, customer_name TEXT, disabled INTEGER, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stock (key TEXT PRIMARY KEY, item_code TEXT, actual_qty REAL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS stock_item ON stock (item_code);
"""


class PosError(Exception):
	"""Base class of the errors PosClient raises."""


class AuthError(PosError):
	"""401/403: wrong API key or secret, or the user lacks a role. Retrying will not help until it is fixed."""


class PermanentError(PosError):
	"""The server refused the call itself (400/404/417/422 ...); sending it again unchanged fails again."""


class TransientError(PosError):
	"""The server could not be reached or is busy; try again after the backoff."""

	def __init__(self, message: str, retry_after: float | None = None):
		super().__init__(message)
		self.retry_after = retry_after


class Uuid7:
	"""UUIDv7 generator: 48-bit unix milliseconds, version 7, RFC variant, 74 random bits.

	Ids from one generator are strictly increasing: within the same millisecond (or if the clock steps
	back) the next id counts up from the last one instead of drawing new random bits.
	"""

	def __init__(self):
		self._lock = threading.Lock()
		self._last = (0, 0)  # (milliseconds, random bits) of the last id

	def __call__(self, unix_ms: float | None = None) -> str:
		ms = int(time.time() * 1000 if unix_ms is None else unix_ms) & (2**48 - 1)
		with self._lock:
			last_ms, last_bits = self._last
			if ms > last_ms:
				bits = int.from_bytes(os.urandom(10), "big") >> 6  # 80 -> 74 bits
			else:
				ms, bits = last_ms, last_bits + 1
				if bits >> 74:
					ms, bits = ms + 1, 0
			self._last = (ms, bits)
		rand_a, rand_b = bits >> 62, bits & (2**62 - 1)
		value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
		return str(uuid.UUID(int=value))


uuid7 = Uuid7()


def backoff_delay(failures: int, rand: Callable[[], float] = random.random) -> float:
	"""Seconds to wait after `failures` transient failures in a row: 1, 2, 4 ... capped at 5 min, with jitter."""
	delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (min(failures, 30) - 1))
	return delay * (1 - BACKOFF_JITTER * rand())


class PosClient:
	"""One terminal's local outbox and master data, and its conversation with the server."""

	def __init__(
		self,
		base_url: str,
		api_key: str,
		api_secret: str,
		terminal: str,
		db_path: str,
		timeout: float = 10,
		session: requests.Session | None = None,
		clock: Callable[[], float] = time.time,
		sleep: Callable[[float], None] = time.sleep,
		rand: Callable[[], float] = random.random,
	):
		self.base_url = base_url.rstrip("/")
		self.terminal = terminal
		self.timeout = timeout
		self.session = session or requests.Session()
		self.clock, self.sleep, self.rand = clock, sleep, rand
		self._headers = {
			"Authorization": f"token {api_key}:{api_secret}",
			"Content-Type": "application/json",
			"Accept": "application/json",
		}
		# Autocommit mode: every write below runs in an explicit BEGIN IMMEDIATE ... COMMIT
		self.db = sqlite3.connect(db_path, isolation_level=None)
		self.db.row_factory = sqlite3.Row
		self.db.execute("PRAGMA journal_mode=WAL")
		self.db.execute("PRAGMA synchronous=FULL")  # a recorded sale must survive a power cut
		self.db.executescript(SCHEMA)

	def close(self):
		self.db.close()

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.close()

	# -- recording (local only) ---------------------------------------------------------------------

	def record_customer(self, customer_name: str, **fields) -> str:
		"""A new customer, e.g. mobile_no=..., email_id=...; sales can refer to it by the returned id."""
		data = {"customer_name": customer_name, **{k: v for k, v in fields.items() if v is not None}}
		return self._record("customer", data)

	def record_sale(
		self,
		items: list[dict],
		payments: list[dict],
		customer=None,
		customer_client_id=None,
		taxes: list[dict] | None = None,
		coupon_code: str | None = None,
		loyalty_points: int | None = None,
	) -> str:
		"""items: [{item_code, qty, rate, uom?, price_list_rate?, discount_percentage?,
		discount_amount?, batch_no?, serial_no?: [...]}], payments: [{mode_of_payment, amount}];
		taxes the till charged on top: [{account_head, amount, description?}]; a coupon code and the
		loyalty points redeemed, if any."""
		data = _invoice_data(
			items,
			payments,
			customer,
			customer_client_id,
			is_return=False,
			taxes=taxes,
			coupon_code=coupon_code,
			loyalty_points=loyalty_points,
		)
		return self._record("sales_invoice", data)

	def record_return(
		self,
		items: list[dict],
		payments: list[dict],
		return_against=None,
		return_against_client_id=None,
		customer=None,
		customer_client_id=None,
	) -> str:
		"""A return against an invoice (its ERPNext name or the client_id of an offline sale).

		Quantities and amounts are sent negative whatever sign the caller used.
		"""
		if not (return_against or return_against_client_id):
			raise ValueError("a return needs return_against or return_against_client_id")
		data = _invoice_data(items, payments, customer, customer_client_id, is_return=True)
		data["is_return"] = True
		if return_against:
			data["return_against"] = return_against
		if return_against_client_id:
			data["return_against_client_id"] = return_against_client_id
		return self._record("sales_invoice", data)

	def record_stock_adjustment(self, item_code: str, qty: float, reason: str | None = None) -> str:
		"""qty > 0: found or received; qty < 0: damaged or lost."""
		data = {"item_code": item_code, "qty": float(qty)}
		if reason:
			data["reason"] = reason
		return self._record("stock_adjustment", data)

	def open_shift(self, opening_amounts: list[dict]) -> str:
		"""Open a shift with the cash in the drawer, [{mode_of_payment, amount}]; the sales and
		returns recorded until close_shift belong to it."""
		if self.current_shift():
			raise ValueError("a shift is already open: close it first")
		data = {"opening_amounts": _amounts(opening_amounts)}
		return self._record("shift_open", data, shift_change="open")

	def close_shift(self, closing_amounts: list[dict]) -> str:
		"""Close the open shift with the cash counted, [{mode_of_payment, amount}]."""
		shift = self.current_shift()
		if not shift:
			raise ValueError("no shift is open")
		data = {"shift_client_id": shift, "closing_amounts": _amounts(closing_amounts)}
		return self._record("shift_close", data, shift_change="close")

	def current_shift(self) -> str | None:
		"""The client_id of the open shift's shift_open, or None."""
		return self._get_state("shift")

	def _record(self, op_type: str, data: dict, shift_change: str | None = None) -> str:
		now = self.clock()
		client_id = uuid7(now * 1000)
		timestamp = datetime.fromtimestamp(now, timezone.utc).astimezone().isoformat()
		with self._transaction() as db:
			shift = self._get_state("shift")  # read in the transaction that records the sale
			if op_type == "sales_invoice" and shift:
				data = {**data, "shift_client_id": shift}
			if shift_change:
				self._set_state("shift", client_id if shift_change == "open" else None)
			seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox").fetchone()[0]
			db.execute(
				"INSERT INTO outbox (client_id, seq, type, timestamp, data, status, updated_at)"
				" VALUES (?, ?, ?, ?, ?, ?, ?)",
				(client_id, seq, op_type, timestamp, json.dumps(data), PENDING, self._now_iso()),
			)
		return client_id

	# -- syncing (network) --------------------------------------------------------------------------

	def sync(self, pull: bool = True) -> dict:
		"""Push, poll and pull unless a backoff is running; returns what happened.

		Transient failures are reported (``error``, ``retry_in``) and start a backoff, never raised.
		AuthError and PermanentError are raised: retrying cannot fix them.
		"""
		wait = self.next_attempt_at() - self.clock()
		if wait > 0:
			return {"ok": False, "skipped": "backoff", "retry_in": wait, "pending": self.pending()}
		report = {"ok": False, "pushed": {}, "polled": {}, "pulled": 0}
		try:
			report["pushed"] = self.push()
			report["polled"] = self.poll()
			if pull:
				report["pulled"] = self.pull()
		except TransientError as exc:
			report["error"] = str(exc)
			report["retry_in"] = self.next_attempt_at() - self.clock()
		else:
			report["ok"] = True
			self._reset_backoff()
		report["pending"] = self.pending()
		return report

	def sync_until_idle(self, timeout: float = 120.0, poll_interval: float = 1.0) -> dict:
		"""Sync again and again, sleeping through backoffs, until nothing is pending or `timeout` runs out."""
		deadline = self.clock() + timeout
		while True:
			report = self.sync()
			now = self.clock()
			if report["pending"] == 0 or now >= deadline:
				return report
			self.sleep(min(report.get("retry_in") or poll_interval, deadline - now))

	def bootstrap(self) -> dict:
		"""Fetch the terminal's config, drop the local master data and pull it all again."""
		config = self._reset_master_data()
		self.pull()
		return config

	def pull(self, limit: int = 500) -> int:
		"""Pull master data changes page by page; returns how many records and deletions were applied.

		Bootstraps first if this terminal never did. On full_resync_required the local master data and
		cursor are dropped and everything is pulled again from the start.
		"""
		if self.config() is None:
			self._reset_master_data()
		applied = 0
		while True:
			cursor = self._get_state("cursor")
			page = self._call("pull", {"terminal": self.terminal, "cursor": cursor, "limit": limit})
			if page.get("full_resync_required"):
				if cursor is None:
					raise PermanentError("pull: the server asks for a full resync of a pull from the start")
				self._reset_master_data()
				continue
			records, deleted = page.get("records") or [], page.get("deleted") or []
			with self._transaction():
				for record in records:
					self._upsert(record["type"], record["key"], record.get("data") or {})
				for row in deleted:
					self._delete(row["type"], row["key"])
				# Same transaction as the rows: the cursor can never run ahead of (or lag behind) the data
				self._set_state("cursor", page.get("cursor"))
			applied += len(records) + len(deleted)
			if not page.get("has_more"):
				return applied
			if page.get("cursor") == cursor:
				raise PermanentError("pull: the server says has_more but did not move the cursor")

	def push(self, batch_size: int = MAX_BATCH) -> dict:
		"""Send every pending operation in recorded order; returns the number of results per status.

		Accepted operations are not sent again: poll() follows them up.
		"""
		batch_size = max(1, min(batch_size, MAX_BATCH))
		counts: dict[str, int] = {}
		last_seq = 0  # an op the server did not answer for stays pending until the next push, not this loop
		while True:
			rows = self.db.execute(
				"SELECT client_id, seq, type, timestamp, data FROM outbox"
				" WHERE status = ? AND seq > ? ORDER BY seq LIMIT ?",
				(PENDING, last_seq, batch_size),
			).fetchall()
			if not rows:
				return counts
			with self._transaction() as db:
				db.executemany(
					"UPDATE outbox SET attempts = attempts + 1 WHERE client_id = ?",
					[(row["client_id"],) for row in rows],
				)
			operations = [
				{
					"client_id": row["client_id"],
					"type": row["type"],
					"timestamp": row["timestamp"],
					"data": json.loads(row["data"]),
				}
				for row in rows
			]
			message = self._call("push", {"terminal": self.terminal, "operations": operations})
			self._save_results(message.get("results") or [], counts)
			last_seq = rows[-1]["seq"]

	def poll(self) -> dict:
		"""Ask for the outcome of accepted operations; returns the number of results per status."""
		client_ids = [
			row[0]
			for row in self.db.execute(
				"SELECT client_id FROM outbox WHERE status = ? ORDER BY seq", (ACCEPTED,)
			)
		]
		counts: dict[str, int] = {}
		for start in range(0, len(client_ids), MAX_BATCH):
			body = {"terminal": self.terminal, "client_ids": client_ids[start : start + MAX_BATCH]}
			self._save_results(self._call("results", body).get("results") or [], counts)
		return counts

	# -- local views --------------------------------------------------------------------------------

	def pending(self) -> int:
		"""Operations without a final status yet (pending or accepted)."""
		placeholders = ", ".join("?" * len(FINAL_STATUSES))
		query = f"SELECT COUNT(*) FROM outbox WHERE status NOT IN ({placeholders})"
		return self.db.execute(query, tuple(FINAL_STATUSES)).fetchone()[0]

	def operation(self, client_id: str) -> dict | None:
		row = self.db.execute("SELECT * FROM outbox WHERE client_id = ?", (client_id,)).fetchone()
		return _operation_dict(row) if row else None

	def operations(self) -> list[dict]:
		"""Every operation in the outbox, in recorded order."""
		return [_operation_dict(row) for row in self.db.execute("SELECT * FROM outbox ORDER BY seq")]

	def config(self) -> dict | None:
		"""The terminal's config from the last bootstrap (company, warehouse, payment_modes, taxes ...)."""
		return self._get_state("config")

	def next_attempt_at(self) -> float:
		"""Unix time before which sync() stays off the network (0: no backoff)."""
		return self._get_state("next_attempt_at", 0.0)

	def items(self) -> list[dict]:
		"""Enabled items, by item_code."""
		rows = self.db.execute("SELECT data FROM items WHERE NOT COALESCE(disabled, 0) ORDER BY item_code")
		return [json.loads(row[0]) for row in rows]

	def item_by_barcode(self, barcode: str) -> dict | None:
		row = self.db.execute(
			"SELECT items.data FROM item_barcodes JOIN items ON items.key = item_barcodes.item_key"
			" WHERE item_barcodes.barcode = ?",
			(barcode,),
		).fetchone()
		return json.loads(row[0]) if row else None

	def price(self, item_code: str, uom: str | None = None) -> float | None:
		query, args = "SELECT price_list_rate FROM prices WHERE item_code = ?", [item_code]
		if uom:
			query, args = query + " AND uom = ?", [*args, uom]
		row = self.db.execute(query + " ORDER BY key LIMIT 1", args).fetchone()
		return row[0] if row else None

	def batches(self, item_code: str) -> list[dict]:
		"""The batches with stock in the terminal's warehouse ([] for an item without batches)."""
		return self._stock_data(item_code).get("batches") or []

	def serial_nos(self, item_code: str) -> list[str]:
		"""The serial numbers in the terminal's warehouse ([] for an item without them)."""
		return self._stock_data(item_code).get("serial_nos") or []

	def _stock_data(self, item_code: str) -> dict:
		row = self.db.execute("SELECT data FROM stock WHERE item_code = ? LIMIT 1", (item_code,)).fetchone()
		return json.loads(row[0]) if row else {}

	def stock(self, item_code: str) -> float | None:
		"""Actual quantity as last pulled (None: the server sent no stock for this item)."""
		return self.db.execute(
			"SELECT SUM(actual_qty) FROM stock WHERE item_code = ?", (item_code,)
		).fetchone()[0]

	# -- internals ----------------------------------------------------------------------------------

	@contextmanager
	def _transaction(self):
		self.db.execute("BEGIN IMMEDIATE")
		try:
			yield self.db
		except BaseException:
			self.db.execute("ROLLBACK")
			raise
		self.db.execute("COMMIT")

	def _get_state(self, key: str, default=None):
		row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
		return default if row is None else json.loads(row[0])

	def _set_state(self, key: str, value):
		self.db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))

	def _now_iso(self) -> str:
		return datetime.fromtimestamp(self.clock(), timezone.utc).isoformat()

	def _reset_master_data(self) -> dict:
		message = self._call("bootstrap", {"terminal": self.terminal})
		config = message.get("config") or {}
		with self._transaction() as db:
			for table, _columns in MASTER_TABLES.values():
				db.execute(f"DELETE FROM {table}")
			db.execute("DELETE FROM item_barcodes")
			self._set_state("config", config)
			self._set_state("cursor", message.get("cursor"))
		return config

	def _upsert(self, record_type: str, key: str, data: dict):
		if record_type not in MASTER_TABLES:
			return  # a type this client does not know yet: skip it rather than stop syncing
		table, columns = MASTER_TABLES[record_type]
		values = [data.get(column) for column in columns]
		placeholders = ", ".join("?" * (len(columns) + 2))
		self.db.execute(
			f"INSERT OR REPLACE INTO {table} (key, data, {', '.join(columns)}) VALUES ({placeholders})",
			(key, json.dumps(data), *values),
		)
		if record_type == "item":
			self.db.execute("DELETE FROM item_barcodes WHERE item_key = ?", (key,))
			self.db.executemany(
				"INSERT OR REPLACE INTO item_barcodes (barcode, item_key) VALUES (?, ?)",
				[(barcode, key) for barcode in data.get("barcodes") or []],
			)

	def _delete(self, record_type: str, key: str):
		if record_type not in MASTER_TABLES:
			return
		self.db.execute(f"DELETE FROM {MASTER_TABLES[record_type][0]} WHERE key = ?", (key,))
		if record_type == "item":  # no longer sold here: its barcodes, prices and stock go with it
			self.db.execute("DELETE FROM item_barcodes WHERE item_key = ?", (key,))
			self.db.execute("DELETE FROM prices WHERE item_code = ?", (key,))
			self.db.execute("DELETE FROM stock WHERE item_code = ?", (key,))

	def _save_results(self, results: Iterable[dict], counts: dict[str, int]):
		with self._transaction() as db:
			for result in results:
				status = result.get("status")
				counts[status] = counts.get(status, 0) + 1
				if status == "unknown":
					status = PENDING  # the server never stored it: push it again
				elif status not in SERVER_STATUSES:
					continue
				# A final status is never overwritten (e.g. by a replayed "accepted")
				db.execute(
					"UPDATE outbox SET status = ?, name = ?, error = ?, updated_at = ?"
					" WHERE client_id = ? AND status IN (?, ?)",
					(
						status,
						result.get("name"),
						result.get("error"),
						self._now_iso(),
						result.get("client_id"),
						PENDING,
						ACCEPTED,
					),
				)

	def _call(self, method: str, body: dict) -> dict:
		"""POST to the server; a transient failure starts (or lengthens) the backoff before it is raised."""
		try:
			return self._send(method, body)
		except TransientError as exc:
			failures = self._get_state("failures", 0) + 1
			delay = exc.retry_after if exc.retry_after is not None else backoff_delay(failures, self.rand)
			with self._transaction():
				self._set_state("failures", failures)
				self._set_state("next_attempt_at", self.clock() + delay)
			raise

	def _reset_backoff(self):
		if self._get_state("failures", 0) or self.next_attempt_at():
			with self._transaction():
				self._set_state("failures", 0)
				self._set_state("next_attempt_at", 0.0)

	def _send(self, method: str, body: dict) -> dict:
		url = f"{self.base_url}{API_PATH}{method}"
		try:
			response = self.session.post(
				url, data=json.dumps(body), headers=self._headers, timeout=self.timeout
			)
		except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
			raise TransientError(f"{method}: cannot reach the server ({exc})")
		status = response.status_code
		if status in AUTH_STATUSES:
			raise AuthError(
				f"{method}: HTTP {status} {_error_text(response)} - check the API key and secret"
				" and that the user may use the POS API"
			)
		if status in TRANSIENT_STATUSES or status >= 500:
			raise TransientError(
				f"{method}: HTTP {status} {_error_text(response)}", retry_after=_retry_after(response)
			)
		if status >= 400:
			raise PermanentError(f"{method}: HTTP {status} {_error_text(response)}")
		try:
			payload = response.json()
		except ValueError:
			payload = None
		if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
			# e.g. a captive portal or proxy answering with its own page: the server was not reached
			raise TransientError(f"{method}: unexpected answer (HTTP {status}, not a Frappe JSON message)")
		return payload["message"]


def _invoice_data(items, payments, customer, customer_client_id, is_return: bool, **extra) -> dict:
	if not items:
		raise ValueError("an invoice needs at least one item")

	def signed(value) -> float:
		return -abs(float(value)) if is_return else float(value)

	lines = []
	for item in items:
		line = {"item_code": item["item_code"], "qty": signed(item["qty"]), "rate": float(item["rate"])}
		# what the till knew and charged besides the rate, and the batch or serials it sold
		for key in ("uom", "price_list_rate", "discount_percentage", "discount_amount", "batch_no"):
			if item.get(key) is not None:
				line[key] = item[key]
		if item.get("serial_no"):
			line["serial_no"] = list(item["serial_no"])
		lines.append(line)
	data = {
		"items": lines,
		"payments": [
			{"mode_of_payment": payment["mode_of_payment"], "amount": signed(payment["amount"])}
			for payment in payments
		],
	}
	if customer:
		data["customer"] = customer
	if customer_client_id:
		data["customer_client_id"] = customer_client_id
	for key, value in extra.items():
		if value:
			data[key] = value
	return data


def _amounts(rows: list[dict]) -> list[dict]:
	return [{"mode_of_payment": r["mode_of_payment"], "amount": float(r["amount"])} for r in rows]


def _operation_dict(row: sqlite3.Row) -> dict:
	operation = dict(row)
	operation["data"] = json.loads(operation["data"])
	return operation


def _error_text(response: requests.Response) -> str:
	"""Frappe's own words: _server_messages (a JSON list of JSON objects), else exception, else message."""
	try:
		body = response.json()
	except ValueError:
		return response.text[:200]
	if not isinstance(body, dict):
		return str(body)[:200]
	try:
		messages = [
			json.loads(item).get("message", "") for item in json.loads(body.get("_server_messages") or "[]")
		]
	except (ValueError, TypeError, AttributeError):
		messages = []
	text = "; ".join(str(message) for message in messages if message)
	return str(text or body.get("exception") or body.get("message") or "")[:500]


def _retry_after(response: requests.Response) -> float | None:
	try:
		return max(0.0, float(response.headers.get("Retry-After", "")))
	except ValueError:
		return None  # absent or an HTTP date: use our own backoff
