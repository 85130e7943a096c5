"""The one write path for inbound records: API calls (and later webhooks, pulls and POS batches)
all come through ``upsert``, so mapping, idempotency and per-record results behave the same.

Each record is written inside its own savepoint: a bad record is rolled back and reported while
the others are kept, unless the caller asks for the whole batch to be atomic.
"""

import frappe
from frappe import _
from frappe.model import default_fields
from frappe.utils import now_datetime

from erp_connect.engine import conflict, mapping
from erp_connect.services import access, correlation
from erp_connect.services.outbox import render_template

CREATED, UPDATED, UNCHANGED, CANCELLED, CONFLICT, ERROR = (
	"created",
	"updated",
	"unchanged",
	"cancelled",
	"conflict",
	"error",
)
STATUSES = (CREATED, UPDATED, UNCHANGED, CANCELLED, CONFLICT, ERROR)
ACTIONS = ("save", "submit", "cancel")
# fields a caller may never set; Frappe manages them
PROTECTED_FIELDS = frozenset(default_fields) | {"doctype", "amended_from", "naming_series"}


class InvalidRecord(frappe.ValidationError):
	http_status_code = 422


def upsert(
	connector: "frappe.Document",
	doctype: str,
	records: list,
	atomic: bool = False,
	action: str = "save",
	rule: dict | None = None,
	correlation_id: str | None = None,
) -> dict:
	"""Create or update one document per record (and submit it, with action "submit"), or cancel
	the documents of the records' external ids (action "cancel"); per-record results and counts.

	``rule`` is given by pulls (their own field map, conflict policy and operations); API calls
	use the connector's inbound Sync Rule and its Allowed DocTypes. ``correlation_id`` is stamped
	on the links written and on the events the writes cause."""
	with correlation.correlated(correlation_id):
		frappe.db.savepoint(BATCH_SAVEPOINT)
		try:
			return _upsert(connector, doctype, records, atomic, action, rule, defer_links=True)
		except RacingLink:
			# another request linked one of these external ids meanwhile: write the batch again
			# one link at a time, so that only the record that raced fails
			frappe.db.rollback(save_point=BATCH_SAVEPOINT)
			return _upsert(connector, doctype, records, atomic, action, rule, defer_links=False)


BATCH_SAVEPOINT = "erp_connect_upsert_batch"


class RacingLink(Exception):
	pass


def _upsert(
	connector, doctype: str, records: list, atomic: bool, action: str, rule: dict | None, defer_links: bool
) -> dict:
	"""With ``defer_links`` the links of new records are written together in one INSERT at the
	end (one round trip for the batch instead of one per record)."""
	rule = rule or inbound_rule(connector.name, doctype)
	allowed = (rule or {}).get("allowed") or access.allowed_operations(connector, doctype)
	links = known_links(connector.name, doctype, [_external_id(rule, r) for r in records])
	links.defer = defer_links
	results = []
	for index, record in enumerate(records):
		savepoint = f"erp_connect_upsert_{index}"
		frappe.db.savepoint(savepoint)
		try:
			if action == "cancel":
				outcome = cancel_one(connector.name, doctype, rule, allowed, record, links)
			else:
				outcome = upsert_one(
					connector.name, doctype, rule, allowed, record, links, action == "submit"
				)
			results.append({"index": index, **outcome})
		except Exception as e:
			frappe.db.rollback(save_point=savepoint)
			results.append(
				{
					"index": index,
					"external_id": _external_id(rule, record),
					"status": ERROR,
					"error": describe(e),
				}
			)
		finally:
			frappe.local.message_log = []  # errors are in the results, not in _server_messages
	failed = any(r["status"] == ERROR for r in results)
	if not (atomic and failed):
		insert_links(connector.name, doctype, [link for link in links.values() if link.get("pending")])
	if atomic and failed:
		frappe.db.rollback()
		for r in results:
			if r["status"] != ERROR:
				r.update(status=ERROR, error=_("not written: another record of this atomic batch failed"))
	counts = {s: sum(r["status"] == s for r in results) for s in STATUSES}
	return {"results": results, **counts}


class BatchLinks(dict):
	"""The Sync Links of one batch, by external id. With ``defer``, the links of new records stay
	here (marked pending) until the batch writes them together."""

	defer = False


def known_links(connector: str, doctype: str, external_ids: list) -> BatchLinks:
	"""The Sync Links of a whole batch in one query, by external id."""
	ids = [str(i) for i in external_ids if i not in (None, "")]
	rows = frappe.get_all(
		"Sync Link",
		{"connector": connector, "reference_doctype": doctype, "external_id": ("in", ids or [""])},
		["name", "external_id", "reference_name", "content_hash", "local_hash"],
	)
	return BatchLinks((r.external_id, r) for r in rows)


def upsert_one(
	connector: str,
	doctype: str,
	rule: dict | None,
	allowed: set[str],
	record,
	links: dict,
	submit: bool = False,
) -> dict:
	if not isinstance(record, dict):
		raise InvalidRecord(_("a record must be a JSON object"))
	external_id = _external_id(rule, record)
	if external_id in (None, ""):
		raise InvalidRecord(_("the record has no external id at {0}").format(_id_path(rule)))
	data = map_inbound(connector, doctype, rule, record, links)
	content_hash = conflict.content_hash(data)

	link = links.get(str(external_id)) or adopted_link(rule, doctype, str(external_id))
	if submit and "submit" not in allowed:
		raise access.AccessDenied(_("this connector may not submit {0}").format(doctype))
	if link and frappe.db.exists(doctype, link.reference_name):
		docstatus = frappe.db.get_value(doctype, link.reference_name, "docstatus")
		if link.content_hash == content_hash and (docstatus == 1 or not submit):
			return {"external_id": external_id, "status": UNCHANGED, "name": link.reference_name}
		if "update" not in allowed:
			raise access.AccessDenied(_("this connector may not update {0}").format(doctype))
		if docstatus != 0:
			raise InvalidRecord(
				_(
					"{0} {1} is submitted or cancelled and cannot change; cancel it and send a new record"
				).format(doctype, link.reference_name)
			)
		doc = frappe.get_doc(doctype, link.reference_name)
		policy = (rule or {}).get("conflict_policy")
		if policy and link.local_hash and local_hash(doc, data) != link.local_hash:
			decision = conflict.decide(policy, remote_changed=True, erpnext_changed=True)
			if decision != conflict.WRITE:
				return hold_conflict(
					connector, rule, doc, str(external_id), data, content_hash, link, decision
				)
		doc.update(data)
		doc.flags.erp_connect_origin = connector  # not pushed back to where it came from
		doc.save()
		status = UPDATED
	else:
		if "create" not in allowed:
			raise access.AccessDenied(_("this connector may not create {0}").format(doctype))
		doc = frappe.get_doc({**data, "doctype": doctype})
		doc.flags.erp_connect_origin = connector
		doc.insert()
		status = CREATED
	if submit:
		doc.submit()
	hashes = {"content_hash": content_hash, "local_hash": local_hash(doc, data)}
	links[str(external_id)] = save_link(
		link, connector, doctype, str(external_id), doc.name, hashes, defer=links.defer
	)
	return {"external_id": external_id, "status": status, "name": doc.name}


def adopted_link(rule: dict | None, doctype: str, external_id: str):
	"""Sites that share names (another Frappe site) adopt the local document of the same name the
	first time they meet it, instead of creating a second one."""
	if rule and rule.get("match_by_name") and frappe.db.exists(doctype, external_id):
		return frappe._dict(name=None, reference_name=external_id, content_hash=None, local_hash=None)
	return None


def hold_conflict(
	connector: str, rule: dict, doc, external_id: str, data: dict, content_hash: str, link, decision: str
) -> dict:
	"""Both sides changed: keep ERPNext's version, or park the remote one for a person to decide.
	The link remembers the remote version, so the same remote change is not held again each run."""
	result = {"external_id": external_id, "status": CONFLICT, "name": doc.name}
	if decision == conflict.PARK:
		result["conflict"] = park(connector, rule, doc, external_id, data)
	result["resolution"] = "parked" if decision == conflict.PARK else "kept ERPNext"
	if link.name:  # a link written earlier in this same batch is still pending
		frappe.db.set_value("Sync Link", link.name, "content_hash", content_hash, update_modified=False)
	link.content_hash = content_hash
	return result


def park(connector: str, rule: dict, doc, external_id: str, data: dict) -> str:
	"""One open Sync Conflict per record: a newer remote version replaces the parked one."""
	values = {
		"remote_data": frappe.as_json(data),
		"erpnext_data": frappe.as_json(project(doc, data)),
		"detected_at": now_datetime(),
	}
	open_one = frappe.db.get_value(
		"Sync Conflict",
		{
			"connector": connector,
			"reference_doctype": doc.doctype,
			"external_id": external_id,
			"status": "Open",
		},
	)
	if open_one:
		frappe.db.set_value("Sync Conflict", open_one, values)
		return open_one
	parked = frappe.get_doc(
		{
			"doctype": "Sync Conflict",
			"connector": connector,
			"pull_rule": rule.get("pull_rule"),
			"reference_doctype": doc.doctype,
			"reference_name": doc.name,
			"external_id": external_id,
			"status": "Open",
			**values,
		}
	)
	return parked.insert(ignore_permissions=True).name  # bookkeeping of our own, not user data


def local_hash(doc, data: dict) -> str:
	return conflict.content_hash(project(doc, data))


def project(doc, data: dict) -> dict:
	"""What ``doc`` holds for the fields ``data`` sets (child tables: the row fields it sets), in
	plain values, so a document read back from the database hashes like the one just saved."""
	out = {}
	for field, value in data.items():
		current = doc.get(field)
		if isinstance(value, list):
			keys = sorted({k for row in value if isinstance(row, dict) for k in row})
			out[field] = [{k: _plain(row.get(k)) for k in keys} for row in current or []]
		else:
			out[field] = _plain(current)
	return out


def _plain(value):
	if value is None or value == "":
		return ""
	if isinstance(value, bool):
		return int(value)
	if isinstance(value, int | float):
		return float(value)
	return str(value)


def cancel_one(
	connector: str, doctype: str, rule: dict | None, allowed: set[str], record, links: dict
) -> dict:
	"""Cancel the submitted document a record's external id points at."""
	if "cancel" not in allowed:
		raise access.AccessDenied(_("this connector may not cancel {0}").format(doctype))
	external_id = _external_id(rule, record)
	link = links.get(str(external_id)) if external_id not in (None, "") else None
	if not link or not frappe.db.exists(doctype, link.reference_name):
		raise InvalidRecord(_("no {0} with external id {1} has been synced").format(doctype, external_id))
	doc = frappe.get_doc(doctype, link.reference_name)
	if doc.docstatus == 2:
		return {"external_id": external_id, "status": UNCHANGED, "name": doc.name}
	if doc.docstatus != 1:
		raise InvalidRecord(
			_("{0} {1} is not submitted, so it cannot be cancelled").format(doctype, doc.name)
		)
	doc.flags.erp_connect_origin = connector
	doc.cancel()
	return {"external_id": external_id, "status": CANCELLED, "name": doc.name}


def map_inbound(
	connector: str, doctype: str, rule: dict | None, record: dict, batch: dict | None = None
) -> dict:
	"""Map an external record to ERPNext fields; without an inbound rule the record already uses
	ERPNext field names. Unknown and protected fields are refused, never silently dropped."""
	if rule and rule["field_rules"]:
		data = mapping.map_record(
			record,
			rule["field_rules"],
			mapping.INBOUND,
			render_template,
			lambda linked_doctype, external_id: resolve_link(
				connector, linked_doctype, external_id, batch if linked_doctype == doctype else None
			),
		)
	else:
		data = {k: v for k, v in record.items() if k != _id_path(rule)}
	check_fields(doctype, data)
	return data


def check_fields(doctype: str, data: dict) -> None:
	meta = frappe.get_meta(doctype)
	protected = sorted(PROTECTED_FIELDS & set(data))
	unknown = sorted(f for f in data if f not in protected and not meta.get_field(f))
	problems = []
	if protected:
		problems.append(_("these fields cannot be set: {0}").format(", ".join(protected)))
	if unknown:
		problems.append(_("{0} has no fields {1}").format(doctype, ", ".join(unknown)))
	for df in meta.get_table_fields():
		rows = data.get(df.fieldname)
		if rows is None:
			continue
		if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
			problems.append(_("{0} must be a list of objects").format(df.fieldname))
			continue
		child = frappe.get_meta(df.options)
		bad = sorted({f for r in rows for f in r if f in PROTECTED_FIELDS or not child.get_field(f)})
		if bad:
			problems.append(_("{0} rows have unknown fields {1}").format(df.fieldname, ", ".join(bad)))
	if problems:
		raise InvalidRecord("; ".join(problems))


def resolve_link(connector: str, doctype: str, external_id: str, batch: dict | None = None) -> str:
	"""The ERPNext name of a record synced earlier - in an earlier call, or earlier in this batch
	(``batch``: its links by external id, some not written yet)."""
	if batch and (link := batch.get(str(external_id))):
		return link.reference_name
	name = frappe.db.get_value(
		"Sync Link",
		{"connector": connector, "reference_doctype": doctype, "external_id": external_id},
		"reference_name",
	)
	if not name:
		raise ValueError(_("no {0} with external id {1} has been synced yet").format(doctype, external_id))
	return name


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
	row_sql = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
	try:
		frappe.db.sql(
			"""insert into `tabSync Link` (name, creation, modified, owner, modified_by, connector,
				reference_doctype, external_id, reference_name, content_hash, local_hash, last_synced_at,
				correlation_id)
			values """
			+ ", ".join([row_sql] * len(rows)),
			[value for row in rows for value in row],
		)
	except Exception as e:
		if frappe.db.is_duplicate_entry(e):
			raise RacingLink from e
		raise


def inbound_rule(connector: str, doctype: str) -> dict | None:
	name = frappe.db.get_value(
		"Sync Rule",
		{"connector": connector, "reference_doctype": doctype, "direction": "Inbound", "enabled": 1},
	)
	if not name:
		return None
	rule = frappe.get_doc("Sync Rule", name)
	return {"external_id_path": rule.external_id_path or "id", "field_rules": rule.inbound_field_rules()}


def describe(e: Exception) -> str:
	"""A message a developer can act on; unexpected errors are logged for the site's admins."""
	if isinstance(e, frappe.DuplicateEntryError | frappe.UniqueValidationError):
		return _("a document with these values already exists")
	if isinstance(e, frappe.ValidationError | frappe.PermissionError | mapping.MappingError | ValueError):
		return frappe.utils.strip_html(str(e)) or type(e).__name__
	frappe.log_error("ERP Connect upsert failed")
	return _("unexpected error ({0}); the details are in the site's Error Log").format(type(e).__name__)


def _id_path(rule: dict | None) -> str:
	return rule["external_id_path"] if rule else "id"


def _external_id(rule: dict | None, record) -> str | None:
	if not isinstance(record, dict):
		return None
	value = mapping.read_path(record, _id_path(rule))
	return value if isinstance(value, str | int) else None
