"""Offline POS sync, the parts that need no site: what a terminal's operation must look like, which
other operations it depends on, and the cursor of a terminal's master-data feed.

A terminal sends operations it recorded offline, each with its own client id (UUIDv7 or ULID). An
invoice may name a customer created offline in the same or an earlier batch
(``customer_client_id``), and a return may name the offline invoice it returns
(``return_against_client_id``); those are its dependencies.

A terminal that books POS Invoices with shifts also opens a shift (``shift_open``, the cash in the
drawer per mode of payment) and closes it (``shift_close``, the cash counted); its sales name the
shift they were made in (``shift_client_id``). A close is a barrier: it is applied only after
everything the terminal recorded before it, and nothing recorded after it is applied meanwhile.
"""

import base64
import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field, replace

from erp_connect.engine.cursor import settle

CUSTOMER, SALES_INVOICE, STOCK_ADJUSTMENT = "customer", "sales_invoice", "stock_adjustment"
SHIFT_OPEN, SHIFT_CLOSE = "shift_open", "shift_close"
OPERATION_TYPES = (CUSTOMER, SALES_INVOICE, STOCK_ADJUSTMENT, SHIFT_OPEN, SHIFT_CLOSE)
BARRIERS = {SHIFT_CLOSE}  # applied alone, after every earlier operation of the terminal
MAX_BATCH = 500
MAX_ITEMS = 500  # lines per invoice

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")

# what each operation type may carry; anything else is refused, not silently dropped
_FIELDS = {
	CUSTOMER: {"customer_name", "mobile_no", "email_id"},
	SALES_INVOICE: {
		"customer",
		"customer_client_id",
		"items",
		"payments",
		"is_return",
		"return_against",
		"return_against_client_id",
		"taxes",
		"coupon_code",
		"loyalty_points",
		"shift_client_id",
	},
	STOCK_ADJUSTMENT: {"item_code", "qty", "reason"},
	SHIFT_OPEN: {"opening_amounts"},
	SHIFT_CLOSE: {"shift_client_id", "closing_amounts"},
}
_ITEM_FIELDS = {"item_code", "qty", "rate", "uom"}
# what the terminal knew and charged besides the rate: its list price and discount, and the
# batch or serial numbers it sold
_ITEM_EXTRA_FIELDS = {"price_list_rate", "discount_percentage", "discount_amount", "batch_no", "serial_no"}
_PAYMENT_FIELDS = {"mode_of_payment", "amount"}
_TAX_FIELDS = {"account_head", "amount", "description"}


def problems(op) -> list[str]:
	"""Everything wrong with one operation, as sentences; empty when it can be stored."""
	if not isinstance(op, dict):
		return ["an operation must be a JSON object"]
	found = []
	client_id = op.get("client_id")
	if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
		found.append("client_id must be 8-64 letters, digits, '-' or '_' (a UUIDv7 or ULID)")
	if op.get("type") not in OPERATION_TYPES:
		found.append(f"type must be one of {', '.join(OPERATION_TYPES)}")
	if parse_timestamp(op.get("timestamp")) is None:
		found.append("timestamp must be an ISO 8601 date and time with a time zone")
	unknown = sorted(set(op) - {"client_id", "type", "timestamp", "data"})
	if unknown:
		found.append(f"unknown keys {', '.join(unknown)}")
	data = op.get("data")
	if not isinstance(data, dict):
		return [*found, "data must be a JSON object"]
	if op.get("type") in OPERATION_TYPES:
		found += data_problems(op["type"], data)
	return found


def data_problems(kind: str, data) -> list[str]:
	"""What is wrong with an operation's data (also checked when it is corrected in Desk)."""
	if not isinstance(data, dict):
		return ["data must be a JSON object"]
	found = []
	unknown = sorted(set(data) - _FIELDS[kind])
	if unknown:
		found.append(f"{kind} has no fields {', '.join(unknown)}")
	if kind == CUSTOMER:
		if not _text(data.get("customer_name")):
			found.append("customer_name is required")
	elif kind == STOCK_ADJUSTMENT:
		if not _text(data.get("item_code")):
			found.append("item_code is required")
		if not _number(data.get("qty")) or data["qty"] == 0:
			found.append("qty must be a non-zero number")
	elif kind == SHIFT_OPEN:
		found += _cash_problems(data, "opening_amounts")
	elif kind == SHIFT_CLOSE:
		if not _client_id(data.get("shift_client_id")):
			found.append("shift_client_id is required: the client_id of the shift_open")
		found += _cash_problems(data, "closing_amounts")
	else:
		found += _invoice_problems(data)
	return found


def _invoice_problems(data: dict) -> list[str]:
	found = []
	if "shift_client_id" in data and not _client_id(data["shift_client_id"]):
		found.append("shift_client_id must be the client_id of the shift_open")
	if data.get("customer") and data.get("customer_client_id"):
		found.append("give customer or customer_client_id, not both (neither: the POS Profile's customer)")
	returning = bool(data.get("is_return"))
	if returning and bool(data.get("return_against")) == bool(data.get("return_against_client_id")):
		found.append("a return needs either return_against or return_against_client_id")
	items = data.get("items")
	if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
		found.append(f"items must be a list of 1 to {MAX_ITEMS} lines")
		items = []
	for i, line in enumerate(items):
		if (
			not isinstance(line, dict)
			or set(line) - _ITEM_FIELDS - _ITEM_EXTRA_FIELDS
			or not _text(line.get("item_code"))
		):
			found.append(
				f"items[{i}] needs item_code, qty, rate (and optionally uom, price_list_rate, "
				"discount_percentage, discount_amount, batch_no, serial_no), nothing else"
			)
		elif not _number(line.get("qty")) or not _number(line.get("rate")) or line["rate"] < 0:
			found.append(f"items[{i}] qty and rate must be numbers, rate not negative")
		elif (line["qty"] < 0) != returning or line["qty"] == 0:
			found.append(f"items[{i}] qty must be {'negative on a return' if returning else 'positive'}")
		else:
			found += _line_extra_problems(i, line)
	found += _tax_problems(data.get("taxes", []))
	if "coupon_code" in data and not _text(data["coupon_code"]):
		found.append("coupon_code must be text")
	points = data.get("loyalty_points")
	if points is not None and (not isinstance(points, int) or isinstance(points, bool) or points <= 0):
		found.append("loyalty_points (points redeemed) must be a positive whole number")
	if points is not None and returning:
		found.append("a return cannot redeem loyalty_points")
	payments = data.get("payments", [])
	if not isinstance(payments, list):
		found.append("payments must be a list")
		payments = []
	for i, pay in enumerate(payments):
		if not isinstance(pay, dict) or set(pay) != _PAYMENT_FIELDS or not _text(pay["mode_of_payment"]):
			found.append(f"payments[{i}] needs mode_of_payment and amount, nothing else")
		elif not _number(pay["amount"]):
			found.append(f"payments[{i}] amount must be a number")
	return found


def _line_extra_problems(i: int, line: dict) -> list[str]:
	found = []
	for key in ("price_list_rate", "discount_amount"):
		if key in line and (not _number(line[key]) or line[key] < 0):
			found.append(f"items[{i}] {key} must be a number, not negative")
	if "discount_percentage" in line and not (
		_number(line["discount_percentage"]) and 0 <= line["discount_percentage"] <= 100
	):
		found.append(f"items[{i}] discount_percentage must be a number from 0 to 100")
	if "batch_no" in line and not _text(line["batch_no"]):
		found.append(f"items[{i}] batch_no must be text")
	serials = line.get("serial_no")
	if "serial_no" in line:
		if not isinstance(serials, list) or not all(_text(s) for s in serials):
			found.append(f"items[{i}] serial_no must be a list of serial numbers")
		elif len(serials) != abs(line["qty"]) or len(set(serials)) != len(serials):
			found.append(f"items[{i}] needs one distinct serial number per unit ({abs(line['qty'])})")
	return found


def _tax_problems(taxes) -> list[str]:
	if not isinstance(taxes, list):
		return ["taxes must be a list"]
	found = []
	for i, tax in enumerate(taxes):
		if (
			not isinstance(tax, dict)
			or set(tax) - _TAX_FIELDS
			or not _text(tax.get("account_head"))
			or not _number(tax.get("amount"))
		):
			found.append(
				f"taxes[{i}] needs account_head and amount (and optionally description), nothing else"
			)
	return found


def charged_total(data: dict) -> float:
	"""What the terminal charged: each line's amount rounded to the cent, as ERPNext rounds it,
	plus the taxes it listed on top."""
	lines = sum(round(line["qty"] * line["rate"], 2) for line in data["items"])
	return round(lines + sum(t["amount"] for t in data.get("taxes") or []), 2)


def till_discount(line: dict) -> tuple[float, float]:
	"""The discount the till gave on a line, as (percentage, amount per unit): the one it names,
	or the gap between the list price it knew and the rate it charged."""
	if line.get("discount_percentage"):
		return line["discount_percentage"], 0.0
	if line.get("discount_amount"):
		return 0.0, line["discount_amount"]
	return 0.0, max(line.get("price_list_rate", line["rate"]) - line["rate"], 0.0)


def _cash_problems(data: dict, key: str) -> list[str]:
	"""The cash in the drawer per mode of payment, at opening or as counted at closing."""
	rows = data.get(key)
	if not isinstance(rows, list):
		return [f"{key} must be a list of {{mode_of_payment, amount}}"]
	found, seen = [], set()
	for i, row in enumerate(rows):
		if not isinstance(row, dict) or set(row) != _PAYMENT_FIELDS or not _text(row["mode_of_payment"]):
			found.append(f"{key}[{i}] needs mode_of_payment and amount, nothing else")
		elif not _number(row["amount"]) or row["amount"] < 0:
			found.append(f"{key}[{i}] amount must be a number, not negative")
		elif row["mode_of_payment"] in seen:
			found.append(f"{key}: {row['mode_of_payment']} is counted twice")
		else:
			seen.add(row["mode_of_payment"])
	return found


def dependencies(op: dict) -> list[str]:
	"""The client ids of the offline operations this one needs applied first."""
	data = op.get("data") or {}
	keys = ("customer_client_id", "return_against_client_id", "shift_client_id")
	return [data[k] for k in keys if data.get(k)]


def content_hash(op: dict) -> str:
	"""Identifies an operation's content: the same client id with other content is refused."""
	text = json.dumps(
		{k: op.get(k) for k in ("type", "timestamp", "data")}, sort_keys=True, separators=(",", ":")
	)
	return hashlib.sha256(text.encode()).hexdigest()


def parse_timestamp(value) -> datetime.datetime | None:
	if not isinstance(value, str):
		return None
	try:
		moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
	except ValueError:
		return None
	return moment if moment.tzinfo else None


def _client_id(value) -> bool:
	return isinstance(value, str) and bool(_CLIENT_ID.match(value))


def _text(value) -> bool:
	return isinstance(value, str) and bool(value.strip()) and len(value) <= 140


def _number(value) -> bool:
	return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


# -- the master-data feed's cursor -----------------------------------------------------------------
STREAMS = ("item", "price", "customer", "stock")
DELETED = "deleted"
MAX_CURSOR_AGE_DAYS = 30  # older cursors start over: tombstones may have been cleaned up


class InvalidCursor(ValueError):
	pass


@dataclass(frozen=True)
class FeedCursor:
	"""Where a terminal is in each stream: the last (modified, name) it received, per stream and for
	deletions; when the cursor was first issued; the terminal's setup it was issued for; and the
	horizon of the pass in progress (empty between passes, see engine/cursor.py)."""

	positions: dict = field(default_factory=dict)  # stream -> [modified, name]
	issued: float = 0.0  # unix time of the full snapshot this cursor continues
	setup: str = ""  # hash of the terminal's profile, warehouse and price list
	horizon: str = ""

	def encode(self) -> str:
		raw = json.dumps(
			{"v": 1, "p": self.positions, "i": self.issued, "s": self.setup, "h": self.horizon},
			separators=(",", ":"),
		)
		return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

	@classmethod
	def decode(cls, token: str | None) -> "FeedCursor | None":
		"""None for no cursor (a full snapshot); InvalidCursor for anything we did not issue."""
		if not token:
			return None
		try:
			data = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
			positions = data["p"]
			valid = data["v"] == 1 and isinstance(positions, dict) and DELETED in positions
			valid = valid and all(
				k in (*STREAMS, DELETED)
				and isinstance(v, list)
				and len(v) == 2
				and all(isinstance(x, str) for x in v)
				for k, v in positions.items()
			)
			horizon = data.get("h", "")  # cursors issued before horizons have none: between passes
			if not valid or not isinstance(data["i"], int | float) or not isinstance(data["s"], str):
				raise ValueError
			if not isinstance(horizon, str):
				raise ValueError
			return cls(positions, float(data["i"]), data["s"], horizon)
		except (ValueError, TypeError, KeyError, AttributeError):
			raise InvalidCursor("the cursor is not one this API returned")

	def too_old(self, now: float) -> bool:
		return now - self.issued > MAX_CURSOR_AGE_DAYS * 86400

	def moved(self, stream: str, modified: str, name: str) -> "FeedCursor":
		return replace(self, positions={**self.positions, stream: [modified, name]})

	def in_pass(self, horizon: str) -> "FeedCursor":
		return replace(self, horizon=horizon)

	def settled(self, horizon: str) -> "FeedCursor":
		"""The cursor that ends a pass: no position past the horizon, so the next pass reads again
		whatever may have committed late."""
		positions = {k: list(settle(v, horizon)) for k, v in self.positions.items()}
		return replace(self, positions=positions, horizon="")


def setup_hash(*parts: str) -> str:
	return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
