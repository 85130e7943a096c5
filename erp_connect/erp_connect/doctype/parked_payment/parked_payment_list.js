// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.listview_settings["Parked Payment"] = {
	add_fields: ["status"],
	get_indicator(doc) {
		const colour = { Open: "orange", Allocated: "green", Ignored: "gray" }[doc.status];
		return [__(doc.status), colour, `status,=,${doc.status}`];
	},
};
