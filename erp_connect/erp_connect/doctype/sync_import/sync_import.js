// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Sync Import", {
	refresh(frm) {
		// what this caused: the documents it wrote and the events they sent
		frm.add_custom_button(__("Documents Written"), () =>
			frappe.set_route("List", "Sync Link", { correlation_id: frm.doc.name }), __("Correlation"));
		frm.add_custom_button(__("Events Caused"), () =>
			frappe.set_route("List", "Sync Event", { correlation_id: frm.doc.name }), __("Correlation"));
		if (frm.doc.total) {
			const percent = Math.round((100 * (frm.doc.processed || 0)) / frm.doc.total);
			frm.dashboard.add_progress(__("Import"), percent, `${frm.doc.processed} / ${frm.doc.total}`);
		}
		frappe.realtime.off("erp_connect_import_progress");
		frappe.realtime.on("erp_connect_import_progress", (data) => {
			if (data.name === frm.doc.name) frm.reload_doc();
		});
	},
});
