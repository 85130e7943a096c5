"""A ToDo for a person to review what a terminal did (a stock shortfall, a price difference)."""

import frappe


def review_task(role: str, reference_type: str, reference_name: str, description: str) -> None:
	"""Assigned to a user with ``role`` (Administrator when nobody has it)."""
	owners = frappe.get_all(
		"Has Role",
		{"role": role, "parenttype": "User", "parent": ("!=", "Administrator")},
		pluck="parent",
		order_by="parent",
	)
	frappe.get_doc(
		{
			"doctype": "ToDo",
			"allocated_to": owners[0] if owners else "Administrator",
			"reference_type": reference_type,
			"reference_name": reference_name,
			"description": description,
			"priority": "High",
		}
	).insert(ignore_permissions=True)  # a task for a person, whoever the terminal's user is
