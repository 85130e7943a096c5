"""Messages a pull rule read from a stream but could not write (not JSON, or a record upsert
refused): kept whole as Stream Dead Letters in the batch's own transaction, so acknowledging the
batch loses nothing, and written again from Desk once someone fixed the cause."""

import frappe
from frappe import _
from frappe.utils import now_datetime

from erp_connect.engine.transports import streams
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.status import ERROR
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.inbound.upsert import describe, upsert

DEAD, REPLAYED = "Dead", "Replayed"


def keep(rule, sync_run: str, message: streams.StreamMessage, error: str) -> None:
	"""One dead letter for a message (not committed here: the batch's commit takes it)."""
	frappe.get_doc(
		{
			"doctype": "Stream Dead Letter",
			"pull_rule": rule.name,
			"connector": rule.connector,
			"status": DEAD,
			"message_id": message.message_id,
			"subject": message.subject,
			"sync_run": sync_run,
			"error": error[:2000],
			"body": message.data.decode("utf-8", "replace"),
		}
	).insert(ignore_permissions=True)


def replay(name: str) -> str:
	"""Upsert the letter's records as the connector's API user; Replayed when every one was
	written, else the error stays and Retries counts up. Returns the status."""
	with named_lock("dead-letter", name, 10) as taken:
		if not taken:
			frappe.throw(_("This dead letter is being retried already"))
		letter = frappe.get_doc("Stream Dead Letter", name)
		if letter.status == REPLAYED:
			return REPLAYED
		rule = frappe.get_doc("Pull Rule", letter.pull_rule)
		connector = frappe.get_doc("Connector", letter.connector)
		try:
			records = streams.records_of_message((letter.body or "").encode(), rule.list_spec().records_path)
			with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
				result = upsert(
					connector, rule.reference_doctype, records, spec=rule.upsert_spec(), correlation_id=name
				)
			errors = [r["error"] for r in result["results"] if r["status"] == ERROR]
		except Exception as e:  # not JSON still, no API user, no longer allowed: it stays dead
			frappe.db.rollback()
			errors = [describe(e)]
		letter.db_set(
			{
				"status": DEAD if errors else REPLAYED,
				"attempts": (letter.attempts or 0) + 1,
				"error": "\n".join(errors)[:2000] or None,
				"replayed_at": None if errors else now_datetime(),
			}
		)
		frappe.db.commit()
		return letter.status
