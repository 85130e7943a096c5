"""Background work that writes on someone's behalf runs as that user, so Frappe's permissions
apply to what it writes; the worker's own user is restored afterwards."""

import contextlib
from collections.abc import Iterator

import frappe


@contextlib.contextmanager
def run_as(user: str) -> Iterator[None]:
	caller = frappe.session.user
	frappe.set_user(user)
	try:
		yield
	finally:
		frappe.set_user(caller)
