// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.ui.form.on("Sync Rule", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(__("Preview"), () => {
			const dialog = new frappe.ui.Dialog({
				title: __("Preview a request"),
				fields: [
					{
						fieldname: "docname",
						fieldtype: "Link",
						options: frm.doc.reference_doctype,
						label: __("Document"),
						reqd: 1,
					},
					{ fieldname: "result", fieldtype: "HTML" },
				],
				primary_action_label: __("Preview"),
				primary_action({ docname }) {
					frm.call("preview", { docname }).then(({ message: r }) => {
						const text = r.error
							? r.problems.join("\n")
							: `${r.method} ${r.url}\n\n` +
							  Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`).join("\n") +
							  "\n\n" +
							  JSON.stringify(JSON.parse(r.body), null, 2);
						dialog.fields_dict.result.$wrapper.html(
							`<pre style="max-height: 60vh; overflow: auto">${frappe.utils.escape_html(text)}</pre>`
						);
					});
				},
			});
			dialog.show();
		});
	},
});
