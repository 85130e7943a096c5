// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("POS Operation", {
	refresh(frm) {
		frm.add_custom_button(__("Events Caused"), () =>
			frappe.set_route("List", "Sync Event", { correlation_id: frm.doc.name }), __("Correlation"));
		if (frm.doc.reference_doctype === "POS Closing Entry" && frm.doc.status === "Flagged") {
			frm.add_custom_button(__("Retry Consolidation"), () =>
				frm.call("retry_consolidation").then(() => {
					frappe.show_alert(__("Consolidation queued"));
					frm.reload_doc();
				})
			);
		}
		if (frm.doc.status !== "Failed") return;
		frm.add_custom_button(__("Retry"), () =>
			frm.call("retry", { payload: frm.doc.payload }).then(() => frm.reload_doc())
		);
	},
});
