"""JSON text the way every payload, batch and hash input is written: compact, UTF-8, and with
the types ERPNext documents hold (dates, decimals, bytes)."""

import datetime
import json
from decimal import Decimal


def json_default(value):
	"""json.dumps(default=...) for what ERPNext documents hold."""
	if isinstance(value, datetime.datetime | datetime.date | datetime.time):
		return value.isoformat()
	if isinstance(value, datetime.timedelta):
		return str(value)
	if isinstance(value, Decimal):
		return float(value)
	if isinstance(value, bytes):
		return value.decode("utf-8", "replace")
	raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(default=json_default, separators=(",", ":"), ensure_ascii=False)


def dumps(value) -> str:
	return _ENCODER.encode(value)  # one encoder: json.dumps with options builds a new one per call
