// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("POS Operation", {
	refresh(frm) {
		if (frm.doc.status !== "Failed") return;
		frm.add_custom_button(__("Retry"), () =>
			frm.call("retry", { payload: frm.doc.payload }).then(() => frm.reload_doc())
		);
	},
});
