// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Stream Dead Letter", {
	refresh(frm) {
		if (frm.doc.status === "Dead") {
			frm.add_custom_button(__("Retry"), () => frm.call("retry").then(() => frm.reload_doc()));
		}
		frm.add_custom_button(__("Documents Written"), () =>
			frappe.set_route("List", "Sync Link", { correlation_id: frm.doc.name }), __("Correlation"));
	},
});
