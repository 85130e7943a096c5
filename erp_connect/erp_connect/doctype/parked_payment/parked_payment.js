// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Parked Payment", {
	refresh(frm) {
		if (frm.doc.status !== "Open") return;
		frm.add_custom_button(__("Allocate to…"), () => {
			frappe.prompt(
				[
					{
						fieldname: "reference_doctype",
						fieldtype: "Select",
						label: __("Against"),
						options: ["Sales Invoice", "Sales Order"],
						default: frm.doc.reference_doctype === "Sales Order" ? "Sales Order" : "Sales Invoice",
						reqd: 1,
					},
					{
						fieldname: "reference_name",
						fieldtype: "Dynamic Link",
						options: "reference_doctype",
						label: __("Document"),
						reqd: 1,
					},
				],
				(values) =>
					frm.call("allocate", values).then(({ message: name }) => {
						frappe.show_alert({ message: __("Payment Entry {0} made", [name]), indicator: "green" });
						frm.reload_doc();
					}),
				__("Allocate payment"),
				__("Allocate")
			);
		});
		frm.add_custom_button(__("Ignore"), () => frm.call("ignore").then(() => frm.reload_doc()));
	},
});
