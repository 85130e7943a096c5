"""A correlation id ties what came in to everything it caused: an inbound request (or an API call,
a pull run, a POS operation) -> the documents it wrote (their Sync Links) -> the events those
writes caused (Sync Events). It travels ambiently for the length of the work, so the outbox can
stamp the events without being told."""

import contextlib
import re

import frappe

HEADER = "X-Correlation-ID"
_SAFE = re.compile(r"^[A-Za-z0-9_.:\-]{1,140}$")
ORIGINS = ("Inbound Request", "Sync Import", "Sync Run", "POS Operation")


def current() -> str | None:
	return getattr(frappe.local, "erp_connect_correlation", None)


@contextlib.contextmanager
def correlated(correlation_id: str | None):
	"""Run the block under ``correlation_id`` (an outer one, if any, is kept when None)."""
	previous = current()
	frappe.local.erp_connect_correlation = correlation_id or previous
	try:
		yield frappe.local.erp_connect_correlation
	finally:
		frappe.local.erp_connect_correlation = previous


def for_api_call() -> str:
	"""The caller's X-Correlation-ID when it is a plain token, else a new id for this call."""
	given = frappe.get_request_header(HEADER) if frappe.request else None
	return given if given and _SAFE.match(given) else "api-" + frappe.generate_hash(length=12)


def origin(correlation_id: str) -> tuple[str, str] | None:
	"""The record that started it, when it is one of ours."""
	for doctype in ORIGINS:
		if frappe.db.exists(doctype, correlation_id):
			return doctype, correlation_id
	return None
