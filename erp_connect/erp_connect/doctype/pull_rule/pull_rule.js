// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Pull Rule", {
	refresh(frm) {
		if (frm.is_new()) return;
		if (frm.doc.paused) {
			frm.dashboard.set_headline_alert(
				`${__("Paused")}: ${frappe.utils.escape_html(frm.doc.paused_reason || "")}`,
				"red"
			);
			frm.add_custom_button(__("Resume"), () =>
				frm.call("resume").then(() => frm.reload_doc())
			);
			return;
		}
		const run = (full_resync) =>
			frm.call("run_now", { full_resync }).then(() => {
				frappe.show_alert({ message: __("Run queued"), indicator: "green" });
			});
		frm.add_custom_button(__("Run Now"), () => run(0));
		frm.add_custom_button(__("Full Resync"), () =>
			frappe.confirm(
				__("Read every record again? Known records are recognised, nothing is duplicated."),
				() => run(1)
			)
		);
		if (frm.doc.last_run) {
			frm.add_custom_button(__("Last Run"), () =>
				frappe.set_route("Form", "Sync Run", frm.doc.last_run)
			);
		}
	},
});
