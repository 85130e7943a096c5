// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Inbound Request", {
	refresh(frm) {
		if (frm.doc.status !== "Processed") {
			frm.add_custom_button(__("Process Again"), () => frm.call("retry").then(() => frm.reload_doc()));
		}
	},
});
