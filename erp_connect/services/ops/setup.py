"""Guided setup: turn a preset (engine/presets.py) into the rules of one connector."""

import frappe
from frappe import _

from erp_connect.engine.presets import PRESETS, field_map_rows


def apply_preset(connector: str, preset: str) -> dict:
	"""Create the preset's push, pull and inbound rules for ``connector``; returns their names and
	what is left for the manager to fill in. Rules that exist already are not created twice."""
	if preset not in PRESETS:
		frappe.throw(_("Unknown preset {0}; choose one of {1}").format(preset, ", ".join(PRESETS)))
	spec = PRESETS[preset]
	doc = frappe.get_doc("Connector", connector)
	doc.connector_type = spec["connector_type"]
	if spec.get("receive"):
		doc.receive_scheme = spec["receive"]["scheme"]
		doc.receive_signature_header = spec["receive"]["header"]
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
	return {"created": created, "next_steps": spec["help"]}


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
