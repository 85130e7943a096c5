"""Idempotency-Key on write calls: the first response is kept (24 h) and returned again for the
same key; the same key with a different request is refused."""

import hashlib
import json
from collections.abc import Callable

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from erp_connect.services.common.locks import lock_until_transaction_ends

KEEP_HOURS = 24
MAX_KEY_LENGTH = 140


class IdempotencyConflict(frappe.ValidationError):
	http_status_code = 422


class IdempotencyBusy(frappe.ValidationError):
	"""Another request with the same key is still running."""

	http_status_code = 409


LOCK_WAIT_SECONDS = 60


def run_once(connector: str, key: str, request: tuple, call: Callable[[], dict]) -> dict:
	"""``call()`` once per (connector, key); later calls with the same key and the same ``request``
	(the call's arguments) get the first response, and a different request is refused."""
	request_hash = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
	if len(key) > MAX_KEY_LENGTH:
		raise IdempotencyConflict(_("Idempotency-Key is longer than {0} characters").format(MAX_KEY_LENGTH))
	# held until this request's transaction ends (its answer is stored in it), so a concurrent
	# retry waits and then replays the answer
	if not lock_until_transaction_ends("idem", f"{connector}\n{key}", LOCK_WAIT_SECONDS):
		raise IdempotencyBusy(
			_("a request with Idempotency-Key {0} is still running; send it again later").format(key)
		)

	kept = frappe.db.get_value(
		"Idempotency Record",
		{"connector": connector, "idempotency_key": key, "expires_at": (">", now_datetime())},
		["request_hash", "response"],
		as_dict=True,
		for_update=True,  # the latest committed answer, not this transaction's older snapshot
	)
	if kept:
		if kept.request_hash != request_hash:
			raise IdempotencyConflict(
				_("Idempotency-Key {0} was already used for a different request").format(key)
			)
		frappe.local.response["idempotent_replay"] = True
		return json.loads(kept.response)

	response = call()
	frappe.db.delete("Idempotency Record", {"connector": connector, "idempotency_key": key})  # expired
	frappe.get_doc(
		{
			"doctype": "Idempotency Record",
			"connector": connector,
			"idempotency_key": key,
			"request_hash": request_hash,
			"status_code": 200,
			"response": json.dumps(response, default=str),
			"expires_at": add_to_date(now_datetime(), hours=KEEP_HOURS),
		}
	).db_insert()
	return response


def delete_expired() -> None:
	"""Daily."""
	frappe.db.delete("Idempotency Record", {"expires_at": ("<", now_datetime())})
