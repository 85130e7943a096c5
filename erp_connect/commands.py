"""Bench commands: `bench --site SITE erp-connect <command>`.

Exit codes: 0 when all is well, 1 when the command found a problem (a failing connector, a failed
run, a doctor finding), 2 when it was asked something impossible (an unknown connector or rule).
"""

import json
import sys

import click
from frappe.commands import get_site, pass_context


def _connect(context) -> None:
	import frappe

	frappe.init(site=get_site(context))
	frappe.connect()


def _done(code: int = 0):
	import frappe

	frappe.db.commit()
	frappe.destroy()
	sys.exit(code)


def _connectors(name: str | None) -> list[str]:
	import frappe

	if name and not frappe.db.exists("Connector", name):
		click.echo(f"no connector {name!r}", err=True)
		_done(2)
	return [name] if name else frappe.get_all("Connector", pluck="name", order_by="name")


@click.group("erp-connect")
def erp_connect():
	"""Operate erp_connect: status, drain, retry-dead, replay, run-pull, rebuild-table, doctor."""


@erp_connect.command("status")
@click.option("--connector", help="only this connector")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def status(context, connector=None, as_json=False):
	"""Each connector's health, its events and pull rules, and the POS terminals.
	Exits 1 when a connector is failing."""
	_connect(context)
	import frappe

	from erp_connect.services.ops.health import health

	report = [health(name) for name in _connectors(connector)]
	rules = frappe.get_all(
		"Pull Rule", fields=["name", "connector", "reference_doctype", "enabled", "paused", "last_run"]
	)
	for rule in rules:
		rule["last_run_status"] = rule.last_run and frappe.db.get_value("Sync Run", rule.last_run, "status")
	terminals = frappe.get_all(
		"POS Terminal", fields=["name", "enabled", "backlog", "failed", "flagged", "last_push_at"]
	)
	if as_json:
		click.echo(
			json.dumps({"connectors": report, "pull_rules": rules, "terminals": terminals}, default=str)
		)
	else:
		click.echo(
			f"{'connector':<32} {'state':<9} {'pending':>7} {'retrying':>8} {'dead':>5} {'24h sent':>8}  reason"
		)
		for r in report:
			click.echo(
				f"{r['connector'][:32]:<32} {r['state']:<9} {r['pending']:>7} {r['retrying']:>8} {r['dead']:>5}"
				f" {r['delivered_24h']:>8}  {r['reason']}"
			)
		for rule in rules:
			state = "paused" if rule.paused else ("enabled" if rule.enabled else "disabled")
			click.echo(
				f"pull rule {rule.name} ({rule.reference_doctype} from {rule.connector}): {state}, last run {rule.last_run_status or '-'}"
			)
		for t in terminals:
			click.echo(
				f"terminal {t.name}: {t.backlog} waiting, {t.failed} failed, {t.flagged} flagged, last push {t.last_push_at or '-'}"
			)
	_done(1 if any(r["state"] == "failing" for r in report) else 0)


@erp_connect.command("drain")
@click.option("--connector", help="only this connector")
@pass_context
def drain(context, connector=None):
	"""Deliver every due event now, in this process."""
	_connect(context)
	from erp_connect.services.push import delivery

	for name in _connectors(connector):
		stats = delivery.drain(name)
		done = ", ".join(f"{v} {k}" for k, v in stats.items() if k != "more" and v)
		click.echo(f"{name}: {done or 'nothing due'}")
	_done()


@erp_connect.command("retry-dead")
@click.option("--connector", help="only this connector")
@pass_context
def retry_dead(context, connector=None):
	"""Queue every dead event again with its own id and a fresh retry schedule."""
	_connect(context)
	import frappe

	from erp_connect.services.common.status import DEAD
	from erp_connect.services.push.events import retry_events

	total = 0
	for name in _connectors(connector):
		dead = frappe.get_all("Sync Event", {"connector": name, "status": DEAD}, pluck="name")
		total += len(retry_events(dead)["retried"]) if dead else 0
	click.echo(f"{total} dead events queued again")
	_done()


@erp_connect.command("replay")
@click.option("--since", required=True, help='events created since, e.g. "2026-11-24 08:00"')
@click.option("--connector", help="only this connector")
@click.option("--yes", is_flag=True, help="do not ask")
@pass_context
def replay(context, since, connector=None, yes=False):
	"""Send the documents of the delivered and dead events since a time again, as new events."""
	_connect(context)
	import frappe
	from frappe.utils import get_datetime

	from erp_connect.services.common.status import DEAD, DELIVERED
	from erp_connect.services.push.events import replay_events

	try:
		moment = get_datetime(since)
	except Exception:
		click.echo(f"not a date and time: {since!r}", err=True)
		_done(2)
	names = []
	for name in _connectors(connector):
		names += frappe.get_all(
			"Sync Event",
			{"connector": name, "creation": (">=", moment), "status": ("in", (DELIVERED, DEAD))},
			pluck="name",
			order_by="name",
		)
	if not names:
		click.echo("no events to replay")
		_done()
	if not yes and not click.confirm(f"replay {len(names)} events?"):
		_done()
	created = replay_events(names)["created"]
	click.echo(f"{len(created)} new events queued")
	_done()


@erp_connect.command("run-pull")
@click.argument("rule")
@click.option("--full-resync", is_flag=True, help="read everything again")
@pass_context
def run_pull(context, rule, full_resync=False):
	"""Run a pull rule now, in this process. Exits 1 when the run failed."""
	_connect(context)
	import frappe

	from erp_connect.services.pull import runs

	if not frappe.db.exists("Pull Rule", rule):
		click.echo(f"no pull rule {rule!r}", err=True)
		_done(2)
	name = runs.run(rule, full_resync=full_resync)
	if not name:
		click.echo("not run: the rule is paused or disabled, or another run of it is going on")
		_done(1)
	run = frappe.get_doc("Sync Run", name)
	click.echo(
		f"{run.name}: {run.status}; {run.pages} pages, {run.created} created, {run.updated} updated,"
		f" {run.unchanged} unchanged, {run.conflicts} conflicts, {run.failed} failed"
		+ (f"; {run.message}" if run.message else "")
	)
	_done(0 if run.status in ("Succeeded", "Completed with Errors") else 1)


@erp_connect.command("rebuild-table")
@click.argument("connector")
@click.argument("doctype")
@click.option("--resume", is_flag=True, help="go on from where the last backfill stopped; drop nothing")
@pass_context
def rebuild_table(context, connector, doctype, resume=False):
	"""Drop DOCTYPE's table in CONNECTOR's PostgreSQL replica and copy every document again, in
	this process, showing progress. Exits 1 when the copy failed."""
	_connect(context)
	import frappe

	from erp_connect.services.push import replica

	_connectors(connector)
	if not replica.mirrors_tables(connector):
		click.echo(f"{connector} is not a PostgreSQL replica", err=True)
		_done(2)
	echo = lambda p: click.echo(f"{doctype}: {p.copied} of {p.total} copied, up to {p.cursor}")  # noqa: E731
	results = replica.rebuild(connector, doctype, resume=resume, echo=echo)
	if not results:
		click.echo(f"no push rule of {connector} mirrors {doctype}", err=True)
		_done(2)
	for p in results:
		click.echo(
			f"{doctype}: {p.status}, {p.copied} of {p.total} copied" + (f"; {p.message}" if p.message else "")
		)
	_done(0 if all(p.status == "Done" for p in results) else 1)


@erp_connect.command("doctor")
@click.option("--offline", is_flag=True, help="skip the reachability checks")
@pass_context
def doctor(context, offline=False):
	"""Check the configuration: unreachable targets, missing secrets, rules on doctypes that no
	longer exist, terminal users, workers and scheduler. Exits 1 when anything is wrong."""
	_connect(context)
	from erp_connect.services.ops.health import doctor as find_problems

	problems = find_problems(check_network=not offline)
	for p in problems:
		click.echo(f"PROBLEM  {p['check']:<10} {p['subject']}: {p['problem']}")
	click.echo("all checks passed" if not problems else f"{len(problems)} problem(s) found")
	_done(1 if problems else 0)


commands = [erp_connect]
