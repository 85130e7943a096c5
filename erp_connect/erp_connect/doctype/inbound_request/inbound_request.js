// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Inbound Request", {
	refresh(frm) {
		// what this caused: the documents it wrote and the events they sent
		frm.add_custom_button(__("Documents Written"), () =>
			frappe.set_route("List", "Sync Link", { correlation_id: frm.doc.name }), __("Correlation"));
		frm.add_custom_button(__("Events Caused"), () =>
			frappe.set_route("List", "Sync Event", { correlation_id: frm.doc.name }), __("Correlation"));
		if (frm.doc.status !== "Processed") {
			frm.add_custom_button(__("Process Again"), () => frm.call("retry").then(() => frm.reload_doc()));
		}
	},
});
