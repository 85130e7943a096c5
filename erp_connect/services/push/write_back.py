"""Writing a push's answer back onto the document it came from.

A transport whose remote answers with something the document should keep (a carrier's tracking
number and label, a webshop's order number) returns it as the SendResult's ``write_back``:
fieldname -> value. When the event is recorded as delivered, in the same transaction, those
values are written onto the event's document with a plain database update: allowed on a submitted
document, no new version, no doc_events, so no push rule sends the document again because of it.
Only fields the doctype has are written; the others are reported on the event.
"""

from collections.abc import Mapping

import frappe
from frappe import _

from erp_connect.services.inbound.links import link_pushed


def write_back(doctype: str, name: str, values: Mapping[str, object]) -> str | None:
	"""Write ``values`` onto the document; a note naming the fields it does not have, or None."""
	meta = frappe.get_meta(doctype)
	known = {k: v for k, v in values.items() if meta.has_field(k)}
	unknown = sorted(set(values) - set(known))
	if known and frappe.db.exists(doctype, name):
		frappe.db.set_value(doctype, name, known, update_modified=False)
	if unknown:
		return _("the answer was not written back to {0} {1}: it has no field {2}").format(
			doctype, name, ", ".join(unknown)
		)
	return None


def write_back_events(
	names: list[str],
	values: Mapping[str, object],
	connector: str | None = None,
	external_id: str | None = None,
) -> str | None:
	"""Write ``values`` onto the document of each event in ``names``, and keep ``external_id`` (the
	id the remote gave it) as its Sync Link with ``connector``."""
	notes = []
	for doctype, name in frappe.get_all(
		"Sync Event",
		{"name": ("in", names)},
		["reference_doctype", "reference_name"],
		as_list=True,
		distinct=True,
	):
		try:
			if external_id:
				link_pushed(connector, doctype, name, external_id)
			note = write_back(doctype, name, values) if values else None
		except Exception as e:  # the delivery happened: it stays Delivered, with the reason
			note = _("the answer was not written back to {0} {1}: {2}").format(doctype, name, e)
		if note:
			notes.append(note)
	return "; ".join(notes) or None
