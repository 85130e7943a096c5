// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Sync Import", {
	refresh(frm) {
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
