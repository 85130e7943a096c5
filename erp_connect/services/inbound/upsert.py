"""The one write path for inbound records: API calls, received webhooks, pulls and imports all
come through ``upsert``, so mapping, access, conflicts and per-record results behave the same.

Each record is written inside its own savepoint: a bad record is rolled back and reported while
the others are kept, unless the caller asks for the whole batch to be atomic.
"""

import copy

import frappe
from frappe import _
from frappe.model import default_fields

from erp_connect.engine import conflict, mapping
from erp_connect.engine.specs import InboundSpec
from erp_connect.services.common import correlation
from erp_connect.services.common.doctypes import sync_refusal
from erp_connect.services.common.status import (
	CANCELLED,
	CREATED,
	ERROR,
	RECORD_STATUSES,
	UNCHANGED,
	UPDATED,
)
from erp_connect.services.common.templates import render_template
from erp_connect.services.inbound import access
from erp_connect.services.inbound.conflicts import hold_conflict, local_hash
from erp_connect.services.inbound.links import (
	InvalidRecord,
	RacingLink,
	adopted_link,
	checked_external_id,
	insert_links,
	known_links,
	resolve_link,
	save_link,
)
from erp_connect.services.push.outbox import forget_sequence_numbers

ACTIONS = ("save", "submit", "cancel")
# fields a caller may never set; Frappe manages them
PROTECTED_FIELDS = frozenset(default_fields) | {"doctype", "amended_from", "naming_series"}


def upsert(
	connector: "frappe.Document",
	doctype: str,
	records: list,
	atomic: bool = False,
	action: str = "save",
	spec: InboundSpec | None = None,
	correlation_id: str | None = None,
) -> dict:
	"""Create or update one document per record (and submit it, with action "submit"), or cancel
	the documents of the records' external ids (action "cancel"); per-record results and counts.

	``spec`` is given by pulls (their own field map and conflict policy); API calls use the
	connector's inbound Sync Rule. Every path may do only what the connector's Allowed DocTypes
	allow, and never touches a core or security doctype. ``correlation_id`` is stamped on the
	links written and on the events the writes cause."""
	refused = sync_refusal(doctype)
	if refused:
		raise access.AccessDenied(refused)
	with correlation.correlated(correlation_id):
		frappe.db.savepoint(BATCH_SAVEPOINT)
		try:
			return _upsert(connector, doctype, records, atomic, action, spec, defer_links=True)
		except RacingLink:
			# another request linked one of these external ids meanwhile: write the batch again
			# one link at a time, so that only the record that raced fails
			rollback_to(BATCH_SAVEPOINT)
			return _upsert(connector, doctype, records, atomic, action, spec, defer_links=False)


BATCH_SAVEPOINT = "erp_connect_upsert_batch"


def rollback_to(savepoint: str) -> None:
	"""Undo what was written since ``savepoint``, events included; the sequence numbers this
	transaction remembered for documents may count undone events, so they are read again."""
	frappe.db.rollback(save_point=savepoint)
	forget_sequence_numbers()


def _upsert(
	connector,
	doctype: str,
	records: list,
	atomic: bool,
	action: str,
	spec: InboundSpec | None,
	defer_links: bool,
) -> dict:
	"""With ``defer_links`` the links of new records are written together in one INSERT at the
	end (one round trip for the batch instead of one per record)."""
	spec = spec or inbound_spec(connector.name, doctype)
	allowed = access.allowed_operations(connector, doctype)
	links = known_links(connector.name, doctype, [_external_id(spec, r) for r in records])
	links.defer = defer_links
	personal = access.is_people_connector(connector)  # a mobile app's people share its links
	results = []
	for index, record in enumerate(records):
		savepoint = f"erp_connect_upsert_{index}"
		frappe.db.savepoint(savepoint)
		try:
			if action == "cancel":
				outcome = cancel_one(connector.name, doctype, spec, allowed, record, links, personal)
			else:
				outcome = upsert_one(
					connector.name, doctype, spec, allowed, record, links, action == "submit", personal
				)
			results.append({"index": index, **outcome})
		except Exception as e:
			rollback_to(savepoint)
			results.append(
				{
					"index": index,
					"external_id": _external_id(spec, record),
					"status": ERROR,
					"error": describe(e, doctype),
				}
			)
		finally:
			frappe.local.message_log = []  # errors are in the results, not in _server_messages
	failed = any(r["status"] == ERROR for r in results)
	if not (atomic and failed):
		insert_links(connector.name, doctype, [link for link in links.values() if link.get("pending")])
	if atomic and failed:
		# back to before the batch, not a whole rollback: the transaction goes on, so an
		# Idempotency-Key's lock is held until its answer is stored with it
		rollback_to(BATCH_SAVEPOINT)
		for r in results:
			if r["status"] != ERROR:
				r.update(status=ERROR, error=_("not written: another record of this atomic batch failed"))
	counts = {s: sum(r["status"] == s for r in results) for s in RECORD_STATUSES}
	return {"results": results, **counts}


def upsert_one(
	connector: str,
	doctype: str,
	spec: InboundSpec,
	allowed: set[str],
	record,
	links: dict,
	submit: bool = False,
	personal: bool = False,
) -> dict:
	"""``personal``: the caller is one of a mobile app's people, who share the connector's links;
	a record whose external id is linked to a document they may not read is refused before
	anything about that document is told or changed."""
	if not isinstance(record, dict):
		raise InvalidRecord(_("a record must be a JSON object"))
	external_id = _external_id(spec, record)
	if external_id in (None, ""):
		raise InvalidRecord(_("the record has no external id at {0}").format(spec.external_id_path))
	checked_external_id(external_id)
	data = map_inbound(connector, doctype, spec, record, links)
	content_hash = conflict.content_hash(data)

	link = links.get(str(external_id)) or adopted_link(spec, doctype, str(external_id))
	if submit and "submit" not in allowed:
		raise access.AccessDenied(not_allowed(connector, "submit", doctype))
	if link and frappe.db.exists(doctype, link.reference_name):
		if personal:
			check_readable(doctype, link.reference_name, external_id)
		docstatus = frappe.db.get_value(doctype, link.reference_name, "docstatus")
		if link.content_hash == content_hash and (docstatus == 1 or not submit):
			return {"external_id": external_id, "status": UNCHANGED, "name": link.reference_name}
		if "update" not in allowed:
			raise access.AccessDenied(not_allowed(connector, "update", doctype))
		if docstatus != 0:
			raise InvalidRecord(
				_(
					"{0} {1} is submitted or cancelled and cannot change; cancel it and send a new record"
				).format(doctype, link.reference_name)
			)
		doc = frappe.get_doc(doctype, link.reference_name)
		policy = spec.conflict_policy
		if policy and link.local_hash and local_hash(doc, data) != link.local_hash:
			decision = conflict.decide(policy, remote_changed=True, erpnext_changed=True)
			if decision != conflict.WRITE:
				return hold_conflict(
					connector, spec, doc, str(external_id), data, content_hash, link, decision
				)
		doc.update(copy.deepcopy(data))  # Frappe adds doctype, parent, idx to the child rows it is given
		doc.flags.erp_connect_origin = connector  # not pushed back to where it came from
		doc.save()
		status = UPDATED
	else:
		if "create" not in allowed:
			raise access.AccessDenied(not_allowed(connector, "create", doctype))
		doc = frappe.get_doc({**copy.deepcopy(data), "doctype": doctype})  # ``data`` stays what was sent
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


def cancel_one(
	connector: str,
	doctype: str,
	spec: InboundSpec,
	allowed: set[str],
	record,
	links: dict,
	personal: bool = False,
) -> dict:
	"""Cancel the submitted document a record's external id points at."""
	if "cancel" not in allowed:
		raise access.AccessDenied(not_allowed(connector, "cancel", doctype))
	external_id = _external_id(spec, record)
	link = links.get(checked_external_id(external_id)) if external_id not in (None, "") else None
	if not link or not frappe.db.exists(doctype, link.reference_name):
		raise InvalidRecord(_("no {0} with external id {1} has been synced").format(doctype, external_id))
	if personal:
		check_readable(doctype, link.reference_name, external_id)
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


def check_readable(doctype: str, name: str, external_id) -> None:
	"""AccessDenied, naming neither the document nor its state, unless the caller may read it."""
	if not frappe.has_permission(doctype, "read", name):
		raise access.AccessDenied(
			_("{0} may not read the {1} of external id {2}").format(frappe.session.user, doctype, external_id)
		)


def map_inbound(
	connector: str, doctype: str, spec: InboundSpec, record: dict, batch: dict | None = None
) -> dict:
	"""Map an external record to ERPNext fields; without a field map the record already uses
	ERPNext field names. Unknown and protected fields are refused, never silently dropped."""
	if spec.field_rules:
		data = mapping.map_record(
			record,
			spec.field_rules,
			mapping.INBOUND,
			render_template,
			lambda linked_doctype, external_id: resolve_link(
				connector, linked_doctype, external_id, batch if linked_doctype == doctype else None
			),
		)
	else:
		data = {k: v for k, v in record.items() if k != spec.external_id_path}
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


def inbound_spec(connector: str, doctype: str) -> InboundSpec:
	"""The connector's inbound Sync Rule for ``doctype``, or none: ERPNext field names, id at ``id``."""
	name = frappe.db.get_value(
		"Sync Rule",
		{"connector": connector, "reference_doctype": doctype, "direction": "Inbound", "enabled": 1},
	)
	if not name:
		return InboundSpec()
	rule = frappe.get_doc("Sync Rule", name)
	return rule.inbound_spec(rule.external_id_path)


def not_allowed(connector: str, operation: str, doctype: str) -> str:
	return _("connector {0} may not {1} {2}: add {3} to its Allowed DocTypes for {2}").format(
		connector, operation, doctype, _(operation.capitalize())
	)


# what a write needs, in the order a record meets them, with the verb a message uses
PERMISSIONS = (("create", "create"), ("write", "update"), ("submit", "submit"), ("cancel", "cancel"))


def describe(e: Exception, doctype: str | None = None) -> str:
	"""A message a developer can act on; unexpected errors are logged for the site's admins."""
	if isinstance(e, frappe.DuplicateEntryError | frappe.UniqueValidationError):
		return _("a document with these values already exists")
	if type(e) is frappe.PermissionError and doctype:  # Frappe's own, not one of ours
		return permission_problem(doctype, str(e))
	if isinstance(e, frappe.ValidationError | frappe.PermissionError | mapping.MappingError | ValueError):
		return frappe.utils.strip_html(str(e)) or type(e).__name__
	frappe.log_error("ERP Connect upsert failed")
	return _("unexpected error ({0}); the details are in the site's Error Log").format(type(e).__name__)


def permission_problem(doctype: str, message: str = "") -> str:
	"""Frappe refused the writing user: say who, what it lacks and what to grant (Frappe's own
	PermissionError mostly carries no message)."""
	user = frappe.session.user
	needed = PERMISSIONS if frappe.get_meta(doctype).is_submittable else PERMISSIONS[:2]
	for ptype, verb in needed:
		if not frappe.has_permission(doctype, ptype, user=user):
			return _("{0} may not {1} {2}: give it a role with {3} on {2}").format(
				user, verb, doctype, _(ptype.capitalize())
			)
	# its roles allow it, so a User Permission or a linked document stopped it
	detail = frappe.utils.strip_html(message or frappe.flags.error_message or "")
	return _("{0} may not write this {1}: check its User Permissions. {2}").format(user, doctype, detail)


def _external_id(spec: InboundSpec, record) -> str | None:
	if not isinstance(record, dict):
		return None
	value = mapping.read_path(record, spec.external_id_path)
	return value if isinstance(value, str | int) else None
