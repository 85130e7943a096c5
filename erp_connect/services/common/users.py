"""Background work that writes on someone's behalf runs as that user, so Frappe's permissions
apply to what it writes; the worker's own user is restored afterwards.

Every write path (API, webhook, pull, import, POS) writes as a connector's or terminal's API
user, and only as one that passes ``writer_problem``: never Administrator, Guest or a System
Manager (whose permissions would make the connector's Allowed DocTypes and Frappe's own
permissions meaningless), never a disabled user, always one with the Connect API User role."""

import contextlib
from collections.abc import Iterator

import frappe
from frappe import _

from erp_connect.install import CONNECT_API_USER

SYSTEM_MANAGER = "System Manager"


class NotAWriter(frappe.PermissionError):
	http_status_code = 403


@contextlib.contextmanager
def run_as(user: str) -> Iterator[None]:
	caller = frappe.session.user
	frappe.set_user(user)
	try:
		yield
	finally:
		frappe.set_user(caller)


def writer_problem(user: str | None, role: str = CONNECT_API_USER) -> str | None:
	"""Why ``user`` may not write for a connector or terminal; None when it may. ``role`` is what
	it must hold: Connect API User for API users, a Mobile App's Member Role for its people."""
	if not user:
		return _("it has no API User: set one, a user with the role {0}").format(role)
	if user in ("Administrator", "Guest"):
		return _("{0} may not write for a connector: use a user of its own with the role {1}").format(
			user, role
		)
	enabled = frappe.db.get_value("User", user, "enabled")
	if enabled is None:
		return _("its API User {0} does not exist").format(user)
	if not enabled:
		return _("its API User {0} is disabled").format(user)
	roles = frappe.get_roles(user)
	if SYSTEM_MANAGER in roles:
		return _(
			"{0} may not write for a connector: it has the role {1}, which may do anything; "
			"use a user with only the roles it needs"
		).format(user, SYSTEM_MANAGER)
	if role not in roles:
		return _("{0} needs the role {1} to write for a connector").format(user, role)
	return None


def check_writer(user: str | None, of: str) -> str:
	"""``user`` when it may write for ``of`` (e.g. "Connector Webshop"); NotAWriter otherwise."""
	problem = writer_problem(user)
	if problem:
		raise NotAWriter(_("{0}: {1}").format(of, problem))
	return user


@contextlib.contextmanager
def run_as_api_user(user: str | None, of: str) -> Iterator[None]:
	"""Run as ``user`` after checking it may write for ``of``; the one way writes switch user."""
	with run_as(check_writer(user, of)):
		yield
