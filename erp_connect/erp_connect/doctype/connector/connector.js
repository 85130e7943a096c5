// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Connector", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Test Connection"), () => {
			frm.call("test_connection").then(({ message: r }) => {
				frappe.msgprint({
					title: r.ok ? __("Connection OK") : __("Connection Failed"),
					indicator: r.ok ? "green" : "red",
					message: r.elapsed_ms != null ? `${r.message} (${r.elapsed_ms} ms)` : r.message,
				});
			});
		});
		frm.add_custom_button(__("Sync Events"), () =>
			frappe.set_route("List", "Sync Event", { connector: frm.doc.name })
		);
	},
});
