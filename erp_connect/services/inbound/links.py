"""Sync Links: which ERPNext document an external id of a connector stands for (connector,
doctype, external id -> name), with the hashes of the last sync that conflict decisions use.

A batch reads all its links in one query and writes the links of its new records in one INSERT;
the unique index on (connector, doctype, external id) makes a racing second writer fail instead
of linking a second document.
"""

import frappe
from frappe import _
from frappe.utils import now_datetime

from erp_connect.engine.specs import InboundSpec
from erp_connect.services.common import correlation, sql

MAX_EXTERNAL_ID_LENGTH = 140  # the Sync Link column
MAX_EXACT_INTEGER = 2**53 - 1  # larger JSON numbers do not survive every client exactly


class InvalidRecord(frappe.ValidationError):
	http_status_code = 422


def checked_external_id(value: str | int) -> str:
	"""The external id as its link keeps it; InvalidRecord for one a link cannot hold exactly."""
	if isinstance(value, int) and abs(value) > MAX_EXACT_INTEGER:
		raise InvalidRecord(
			_("external id {0} is too large to arrive exactly as a JSON number: send it as a string").format(
				value
			)
		)
	text = str(value)
	if len(text) > MAX_EXTERNAL_ID_LENGTH:
		raise InvalidRecord(
			_("external ids may be at most {0} characters long; this one has {1}").format(
				MAX_EXTERNAL_ID_LENGTH, len(text)
			)
		)
	return text


class RacingLink(Exception):
	"""Another request linked one of these external ids at the same moment."""


class BatchLinks(dict):
	"""The Sync Links of one batch, by external id. With ``defer``, the links of new records stay
	here (marked pending) until the batch writes them together."""

	defer = False


def known_links(connector: str, doctype: str, external_ids: list) -> BatchLinks:
	"""The Sync Links of a whole batch in one query, by external id (exactly as given: Frappe's
	filters would strip the spaces around each value)."""
	ids = [str(i) for i in external_ids if i not in (None, "")]
	rows = frappe.db.sql(
		"""select name, external_id, reference_name, content_hash, local_hash from `tabSync Link`
		where connector = %s and reference_doctype = %s and external_id in %s""",
		(connector, doctype, tuple(ids) or ("",)),
		as_dict=True,
	)
	return BatchLinks((r.external_id, r) for r in rows)


def adopted_link(spec: InboundSpec, doctype: str, external_id: str):
	"""Sites that share names (another Frappe site) adopt the local document of the same name the
	first time they meet it, instead of creating a second one."""
	if spec.match_by_name and frappe.db.exists(doctype, external_id):
		return frappe._dict(name=None, reference_name=external_id, content_hash=None, local_hash=None)
	return None


def resolve_link(connector: str, doctype: str, external_id: str, batch: dict | None = None) -> str:
	"""The ERPNext name of a record synced earlier - in an earlier call, or earlier in this batch
	(``batch``: its links by external id, some not written yet)."""
	if batch and (link := batch.get(str(external_id))):
		return link.reference_name
	found = frappe.db.sql(
		"""select reference_name from `tabSync Link`
		where connector = %s and reference_doctype = %s and external_id = %s""",
		(connector, doctype, str(external_id)),
	)
	name = found[0][0] if found else None
	if not name:
		raise ValueError(_("no {0} with external id {1} has been synced yet").format(doctype, external_id))
	return name


def external_id_of(connector: str, doctype: str, name: str) -> str:
	"""The id at the connector's system of a local document (its Sync Link): how a push's External
	ID Link names the record there. ValueError when it was never synced with that system."""
	found = frappe.db.sql(
		"""select external_id from `tabSync Link`
		where connector = %s and reference_doctype = %s and reference_name = %s
		order by last_synced_at desc limit 1""",
		(connector, doctype, name),
	)
	if not found:
		raise ValueError(
			_("{0} {1} has no id at {2}: it was never synced with it").format(doctype, name, connector)
		)
	return found[0][0]


def link_pushed(connector: str, doctype: str, name: str, external_id: str) -> None:
	"""A push created (or updated) the document at the connector's system under ``external_id``:
	link them, so its next push updates that record and its webhooks find this document. The remote
	now holds ERPNext's version, so the link forgets ERPNext's last hash: a later remote change is
	not taken for a conflict with what was already sent."""
	external_id = checked_external_id(external_id)
	found = frappe.db.sql(
		"""select name from `tabSync Link`
		where connector = %s and reference_doctype = %s and external_id = %s for update""",
		(connector, doctype, external_id),
	)
	values = {"reference_name": name, "local_hash": None, "last_synced_at": now_datetime()}
	if found:
		frappe.db.set_value("Sync Link", found[0][0], values, update_modified=False)
		return
	link = frappe._dict(
		external_id=external_id, content_hash=None, correlation_id=correlation.current(), **values
	)
	try:
		insert_links(connector, doctype, [link])
	except RacingLink:  # a webhook of the same record linked it meanwhile
		frappe.db.set_value(
			"Sync Link",
			{"connector": connector, "reference_doctype": doctype, "external_id": external_id},
			values,
		)


def save_link(
	link, connector: str, doctype: str, external_id: str, name: str, hashes: dict, defer: bool = False
) -> dict:
	"""Record (or move) the link; returns it as the batch's lookup keeps it. A new link is a plain
	INSERT, now or (``defer``) with the batch's other new links; either way the unique index
	refuses a second link for the same external id, so a concurrent upsert of the same new record
	fails instead of duplicating it."""
	now = now_datetime()
	values = {
		"reference_name": name,
		**hashes,
		"last_synced_at": now,
		"correlation_id": correlation.current(),
	}
	if link and link.name:
		frappe.db.set_value("Sync Link", link.name, values)
		return frappe._dict({**link, **values})
	new = frappe._dict(name=None, pending=True, external_id=external_id, **values)
	if defer or (link and link.get("pending")):
		return new
	try:
		insert_links(connector, doctype, [new])
	except RacingLink:  # the record's savepoint rolls its document back
		raise InvalidRecord(
			_("external id {0} was written by another request at the same moment").format(external_id)
		)
	return new


def insert_links(connector: str, doctype: str, pending: list[dict]) -> None:
	"""New links in one INSERT, each given its name; RacingLink when another request linked one of
	these external ids meanwhile."""
	if not pending:
		return
	now, user = now_datetime(), frappe.session.user
	for link in pending:
		link.update(name=frappe.generate_hash(length=10), pending=False)
	rows = [
		(
			link.name,
			now,
			now,
			user,
			user,
			connector,
			doctype,
			link.external_id,
			link.reference_name,
			link.content_hash,
			link.local_hash,
			link.last_synced_at,
			link.correlation_id,
		)
		for link in pending
	]
	try:
		sql.insert_rows("Sync Link", LINK_COLUMNS, rows)
	except Exception as e:
		if frappe.db.is_duplicate_entry(e):
			raise RacingLink from e
		raise


LINK_COLUMNS = (
	"name",
	"creation",
	"modified",
	"owner",
	"modified_by",
	"connector",
	"reference_doctype",
	"external_id",
	"reference_name",
	"content_hash",
	"local_hash",
	"last_synced_at",
	"correlation_id",
)
