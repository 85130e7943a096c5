"""What an operator asks of a running site: how each connector is doing, and what is wrong with
the configuration. The bench commands (commands.py) print these, the Desk banner reads health(),
and external monitoring reads connector_status() through the API."""

import frappe
import requests
from frappe import _
from frappe.utils import add_to_date, now_datetime, time_diff_in_seconds

from erp_connect.engine import auth, http, transports
from erp_connect.services.common.status import (
	DEAD,
	DELIVERED,
	PENDING,
	RETRYING,
	SENDING,
	UNFINISHED,
	WAITING,
)

STUCK_MINUTES = 15  # an event waiting longer than this makes its connector "degraded"


def unfinished_counts(connector: str) -> dict:
	"""How many of the connector's events are Pending, Sending, Retrying and Dead (by the index of
	unfinished events; delivered ones are not counted)."""
	return dict(
		frappe.db.sql(
			"""select status, count(*) from `tabSync Event`
			where connector = %s and status in %s group by status""",
			(connector, (*UNFINISHED, DEAD)),
		)
	)


def connector_status(connector: "frappe.Document") -> dict:
	"""What a monitoring system wants to know about one connector."""
	counts = unfinished_counts(connector.name)
	last_delivery = frappe.db.get_value(
		"Sync Event", {"connector": connector.name, "status": DELIVERED}, "max(delivered_at)"
	)
	oldest_pending = frappe.db.get_value(
		"Sync Event",
		{"connector": connector.name, "status": ("in", WAITING)},
		"min(creation)",
	)
	return {
		"connector": connector.name,
		"enabled": bool(connector.enabled),
		"push": {
			"pending": counts.get(PENDING, 0) + counts.get(SENDING, 0),
			"retrying": counts.get(RETRYING, 0),
			"dead": counts.get(DEAD, 0),
			"last_delivered_at": str(last_delivery) if last_delivery else None,
			"oldest_pending_since": str(oldest_pending) if oldest_pending else None,
		},
		"inbound": {
			"linked_records": frappe.db.count("Sync Link", {"connector": connector.name}),
		},
	}


def health(connector: str) -> dict:
	"""healthy / degraded / failing / disabled, with the reason, and the counts behind it."""
	values = frappe.db.get_value("Connector", connector, ["enabled", "dry_run", "paused"], as_dict=True)
	counts = unfinished_counts(connector)
	oldest = frappe.db.sql(
		"""select min(creation) from `tabSync Event`
		where connector = %s and status in %s""",
		(connector, UNFINISHED),
	)[0][0]
	waiting_seconds = int(time_diff_in_seconds(now_datetime(), oldest)) if oldest else 0
	delivered_24h = frappe.db.count(
		"Sync Event",
		{"connector": connector, "status": DELIVERED, "delivered_at": (">", add_to_date(None, hours=-24))},
	)
	paused_rules = frappe.get_all("Pull Rule", {"connector": connector, "paused": 1}, pluck="name")
	disabled_rules = frappe.get_all(
		"Sync Rule", {"connector": connector, "enabled": 0, "disabled_reason": ("is", "set")}, pluck="name"
	)
	state, reason = "healthy", ""
	if not values.enabled:
		state, reason = "disabled", _("the connector is disabled")
	elif values.paused:
		state, reason = "disabled", _("paused: events are recorded and wait for Resume")
	elif counts.get(DEAD) or disabled_rules or paused_rules:
		state = "failing"
		reason = "; ".join(
			filter(
				None,
				[
					counts.get(DEAD) and _("{0} dead events").format(counts[DEAD]),
					disabled_rules
					and _("rules disabled by the receiver: {0}").format(", ".join(disabled_rules)),
					paused_rules and _("pull rules paused: {0}").format(", ".join(paused_rules)),
				],
			)
		)
	elif counts.get(RETRYING) or waiting_seconds > STUCK_MINUTES * 60:
		state = "degraded"
		reason = _("{0} events retrying; the oldest has waited {1} s").format(
			counts.get(RETRYING, 0), waiting_seconds
		)
	return {
		"connector": connector,
		"state": state,
		"reason": reason,
		"dry_run": bool(values.dry_run),
		"pending": counts.get(PENDING, 0) + counts.get(SENDING, 0),
		"retrying": counts.get(RETRYING, 0),
		"dead": counts.get(DEAD, 0),
		"delivered_24h": delivered_24h,
		"oldest_waiting_seconds": waiting_seconds,
	}


# -- doctor ---------------------------------------------------------------------------------------
def doctor(check_network: bool = True) -> list[dict]:
	"""Every problem found, as {"check", "subject", "problem"}; an empty list is a healthy setup."""
	problems = []
	problems += _missing_secrets()
	problems += _rules_on_missing_doctypes()
	problems += _terminal_users()
	problems += _background_processes()
	if check_network:
		problems += _unreachable_targets()
	return problems


def _problem(check: str, subject: str, problem: str) -> dict:
	return {"check": check, "subject": subject, "problem": problem}


def _missing_secrets() -> list[dict]:
	found = []
	for c in frappe.get_all("Connector", {"enabled": 1}, ["name", "auth_type", "receive_doctype"]):
		doc = frappe.get_doc("Connector", c.name)
		needed = list(auth.REQUIRED_SETTINGS.get(c.auth_type, ()))
		if c.receive_doctype:
			needed.append("receive_secret")
		for field in needed:
			df = doc.meta.get_field(field)
			value = doc.secret(field) if df and df.fieldtype == "Password" else doc.get(field)
			if not value:
				found.append(
					_problem("secrets", c.name, _("{0} is empty").format(_(df.label if df else field)))
				)
	return found


def _rules_on_missing_doctypes() -> list[dict]:
	found = []
	for doctype in ("Sync Rule", "Pull Rule"):
		for rule in frappe.get_all(doctype, {"enabled": 1}, ["name", "reference_doctype"]):
			if not frappe.db.exists("DocType", rule.reference_doctype):
				found.append(
					_problem("rules", rule.name, _("{0} no longer exists").format(rule.reference_doctype))
				)
	return found


def _terminal_users() -> list[dict]:
	"""Terminals and connectors whose API user would be refused when their writes run."""
	from erp_connect.services.common.users import writer_problem

	found = []
	for t in frappe.get_all("POS Terminal", {"enabled": 1}, ["name", "api_user"]):
		problem = writer_problem(t.api_user)
		if problem:
			found.append(_problem("terminals", t.name, problem))
	writing = set(frappe.get_all("Pull Rule", {"enabled": 1}, pluck="connector"))
	writing |= set(frappe.get_all("Connector", {"receive_doctype": ("is", "set")}, pluck="name"))
	for c in frappe.get_all("Connector", {"enabled": 1}, ["name", "api_user"]):
		problem = (c.api_user or c.name in writing) and writer_problem(c.api_user)
		if problem:
			found.append(_problem("connectors", c.name, problem))
	return found


def _background_processes() -> list[dict]:
	from frappe.utils.background_jobs import get_workers
	from frappe.utils.scheduler import is_scheduler_disabled, is_scheduler_inactive

	found = []
	if not get_workers():
		found.append(
			_problem("workers", "RQ", _("no background worker is running: nothing is delivered or applied"))
		)
	if is_scheduler_disabled(verbose=False):
		found.append(
			_problem("scheduler", "scheduler", _("the scheduler is disabled: no sweeps, retries or pulls"))
		)
	elif is_scheduler_inactive(verbose=False):
		found.append(
			_problem("scheduler", "scheduler", _("the scheduler is inactive (maintenance mode, or paused)"))
		)
	return found


def _unreachable_targets() -> list[dict]:
	found = []
	for c in frappe.get_all(
		"Connector",
		{"enabled": 1, "dry_run": 0},
		["name", "base_url", "connector_type", "allow_private_network", "timeout_seconds"],
	):
		if not transports.kind(c.connector_type).calls_out:
			continue  # terminals call us, we never call them
		endpoint = transports.Endpoint(
			c.base_url, min(c.timeout_seconds or 5, 5), allow_private=bool(c.allow_private_network)
		)
		try:
			transports.kind(c.connector_type)(endpoint).probe()
		except (requests.RequestException, http.BlockedTargetError, OSError) as e:
			found.append(
				_problem(
					"reachable", c.name, _("{0} cannot be reached: {1}").format(c.base_url, type(e).__name__)
				)
			)
	return found
