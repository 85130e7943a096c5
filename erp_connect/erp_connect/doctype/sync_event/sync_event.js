// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Sync Event", {
	refresh(frm) {
		if (frm.doc.correlation_id) {
			frm.add_custom_button(__("Same Correlation"), () =>
				frappe.set_route("List", "Sync Event", { correlation_id: frm.doc.correlation_id }));
			frm.call("origin").then(({ message: origin }) => {
				if (origin) frm.add_custom_button(__("Origin: {0}", [origin[0]]), () =>
					frappe.set_route("Form", origin[0], origin[1]));
			});
		}
		if (["Dead", "Retrying", "Pending"].includes(frm.doc.status)) {
			frm.add_custom_button(__("Retry"), () => frm.call("retry").then(() => frm.reload_doc()));
		}
		frm.add_custom_button(__("Replay"), () =>
			frm.call("replay").then(({ message: r }) =>
				frappe.show_alert(__("Created event {0}", [r.created.join(", ")]))
			)
		);
	},
});
