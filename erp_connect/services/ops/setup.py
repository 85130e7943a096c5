"""Guided setup: turn a preset (engine/presets.py) into the rules of one connector."""

import frappe
from frappe import _

from erp_connect.engine import transports
from erp_connect.engine.presets import PRESETS, field_map_rows
from erp_connect.install import CONNECT_API_USER


def apply_preset(connector: str, preset: str) -> dict:
	"""Create the preset's push, pull and inbound rules for ``connector`` (and list their doctypes
	in its Allowed DocTypes); returns their names and what is left for the manager to fill in, such
	as the API User that writes what arrives. Rules that exist already are not created twice."""
	if preset not in PRESETS:
		frappe.throw(_("Unknown preset {0}; choose one of {1}").format(preset, ", ".join(PRESETS)))
	spec = PRESETS[preset]
	doc = frappe.get_doc("Connector", connector)
	doc.connector_type = spec["connector_type"]
	moved = bool(spec.get("base_url")) and bool(transports.kind(doc.connector_type).url_problem(doc.base_url))
	if moved:  # an http URL cannot be a broker's: start from the preset's example
		doc.base_url = spec["base_url"]
	doc.api_key_header = doc.api_key_header or spec.get("api_key_header")  # the token: the manager's
	receive = spec.get("receive") or {}
	if receive:
		doc.receive_scheme = receive["scheme"]
		doc.receive_signature_header = receive.get("header") or doc.receive_signature_header
	doc.update(spec.get("connector_fields") or {})
	writes = [r["doctype"] for r in spec.get("pull", []) + spec.get("inbound", [])] + spec.get("writes", [])
	allow_writes(doc, writes + ([receive["doctype"]] if receive.get("doctype") else []))
	# receiving starts once the API User and the secret are there (the form asks for them next)
	receives_now = bool(receive.get("doctype") and doc.api_user and doc.receive_secret)
	if receives_now:
		doc.receive_doctype = receive["doctype"]
	doc.save()
	created = []
	for push in spec.get("push", []):
		created += _once(
			"Sync Rule",
			connector,
			push["doctype"],
			"Push",
			{
				**{f"event_{e}": 1 for e in push["events"]},
				"payload_mode": push.get("payload_mode") or "Mapped Fields",
				**({"target_path": push["target"]} if push.get("target") else {}),
				**({"condition": push["condition"]} if push.get("condition") else {}),
				"field_map": field_map_rows(push.get("map")),
			},
		)
	for pull in spec.get("pull", []):
		created += _once(
			"Pull Rule",
			connector,
			pull["doctype"],
			None,
			{
				"list_path": pull.get("list_path"),
				"pagination_style": pull.get("pagination") or "Page Number",
				"records_path": pull.get(
					"records_path", "data" if pull.get("pagination") != "Link Header" else ""
				),
				"since_param": pull.get("since_param", "updated_since"),
				"id_field": pull.get("id_field", "id"),
				"modified_field": pull.get("modified_field", "updated_at"),
				"field_map": field_map_rows(pull.get("map")),
			},
		)
	for inbound in spec.get("inbound", []):
		created += _once(
			"Sync Rule",
			connector,
			inbound["doctype"],
			"Inbound",
			{
				"external_id_path": inbound.get("id_path", "id"),
				"payload_mode": "Mapped Fields",
				"field_map": field_map_rows(inbound.get("map")),
			},
		)
	steps = spec["help"].replace("{receive_url}", receive_url(connector))
	if receive.get("doctype") and not receives_now:
		steps += " " + _(
			"Then set the API User and the Receive Secret, and Records Become to {0}: receiving starts."
		).format(receive["doctype"])
	if moved:
		steps += " " + _("The Base URL was set to {0}: change it to your server.").format(doc.base_url)
	if (spec.get("pull") or spec.get("inbound")) and not doc.api_user:
		steps += " " + _(
			"Set the API User: pulls and received webhooks write as it (a user with the role {0} and "
			"the roles for these doctypes, never a System Manager)."
		).format(CONNECT_API_USER)
	return {"created": created, "next_steps": steps}


def receive_url(connector: str) -> str:
	"""The URL a platform posts this connector's webhooks to."""
	from urllib.parse import quote

	return frappe.utils.get_url(f"/api/method/erp_connect.api.v1.receive?connector={quote(connector)}")


def allow_writes(connector: "frappe.Document", doctypes: list[str]) -> None:
	"""Pull and inbound rules write only what the connector's Allowed DocTypes allow: list the
	preset's doctypes with Create and Update (rows already there are left as they are)."""
	listed = {row.reference_doctype for row in connector.allowed_doctypes}
	for doctype in dict.fromkeys(doctypes):
		if doctype not in listed:
			connector.append(
				"allowed_doctypes", {"reference_doctype": doctype, "can_create": 1, "can_update": 1}
			)


def _once(
	doctype: str, connector: str, reference_doctype: str, direction: str | None, values: dict
) -> list[str]:
	filters = {"connector": connector, "reference_doctype": reference_doctype}
	if direction:
		filters["direction"] = direction
	if frappe.db.exists(doctype, filters):
		return []
	rule = frappe.get_doc({"doctype": doctype, **filters, **values})
	return [rule.insert().name]
