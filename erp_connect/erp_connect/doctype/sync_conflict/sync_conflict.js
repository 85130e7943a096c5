// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Sync Conflict", {
	refresh(frm) {
		if (frm.doc.status !== "Open") return;
		const resolve = (method, label) =>
			frm.add_custom_button(label, () =>
				frm.call(method).then(() => frm.reload_doc())
			);
		resolve("apply_remote", __("Apply Remote Version"));
		resolve("keep_erpnext", __("Keep ERPNext Version"));
	},
});
