"""The offline POS API: /api/method/erp_connect.api.pos.<method>. Token auth with the API key of
the terminal's API user; every call names its terminal, and a disabled terminal is refused."""

import frappe
from frappe import _

from erp_connect.api.v1 import BadRequest, json_list, required
from erp_connect.engine import pos_rules
from erp_connect.services.inbound import access
from erp_connect.services.pos import feed as pos_feed
from erp_connect.services.pos import ledger


@frappe.whitelist(methods=["POST"])
def bootstrap(terminal: str | None = None) -> dict:
	"""The terminal's setup (company, warehouse, price list, payment modes, taxes); then call
	``pull`` without a cursor for the full snapshot."""
	return pos_feed.bootstrap(_terminal_for_caller(terminal))


@frappe.whitelist(methods=["GET", "POST"])
def pull(terminal: str | None = None, cursor: str | None = None, limit: int | str = 500) -> dict:
	"""Items (with barcodes and UOMs), prices, customers and stock changed since ``cursor`` (all
	of them without one), then deletions; ``has_more`` says to call again at once, and
	``full_resync_required`` that the terminal must drop its data and start without a cursor."""
	term = _terminal_for_caller(terminal)
	try:
		limit = int(limit)
		position = pos_rules.FeedCursor.decode(cursor)
	except (ValueError, TypeError, pos_rules.InvalidCursor) as e:
		raise BadRequest(str(e) if isinstance(e, pos_rules.InvalidCursor) else _("limit must be a number"))
	if not 1 <= limit <= pos_feed.MAX_PAGE:
		raise BadRequest(_("limit must be between 1 and {0}").format(pos_feed.MAX_PAGE))
	return pos_feed.pull(term, position, limit)


@frappe.whitelist(methods=["POST"])
def push(terminal: str | None = None, operations: list | str | None = None) -> dict:
	"""Store up to 500 operations the terminal recorded (customers, sales invoices and returns,
	stock adjustments), each with its own ``client_id``; they are applied in the background.
	Per-operation results: accepted, applied, failed or rejected (not stored). Pushing the same
	operation again returns its result; nothing is ever applied twice."""
	required(terminal=terminal, operations=operations)
	term = _terminal_for_caller(terminal)
	return ledger.push(term, json_list(operations, "operations", pos_rules.MAX_BATCH))


@frappe.whitelist(methods=["GET", "POST"])
def results(terminal: str | None = None, client_ids: list | str | None = None) -> dict:
	"""The current result of each operation (status "unknown" for ids never stored)."""
	required(terminal=terminal, client_ids=client_ids)
	term = _terminal_for_caller(terminal)
	client_ids = json_list(client_ids, "client_ids", pos_rules.MAX_BATCH)
	if not all(isinstance(c, str) for c in client_ids):
		raise BadRequest(_("client_ids must be a list of strings"))
	return ledger.results(term, client_ids)


def _terminal_for_caller(terminal: str | None) -> "frappe.Document":
	"""The enabled terminal whose API user is calling (403 otherwise), within its connector's limits."""
	required(terminal=terminal)
	values = access.caller_of("POS Terminal", terminal, ["enabled", "api_user", "connector"])
	access.check_limits(frappe.get_cached_doc("Connector", values.connector))
	return frappe.get_doc("POS Terminal", terminal)
