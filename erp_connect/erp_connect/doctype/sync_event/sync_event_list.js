// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

const SYNC_EVENT_COLORS = {
	Pending: "blue",
	Sending: "orange",
	Retrying: "yellow",
	Delivered: "green",
	Dead: "red",
	"Dry Run": "gray",
};

frappe.listview_settings["Sync Event"] = {
	add_fields: ["status", "attempts", "last_status_code", "next_attempt_at"],
	get_indicator(doc) {
		return [__(doc.status), SYNC_EVENT_COLORS[doc.status] || "gray", `status,=,${doc.status}`];
	},
	onload(listview) {
		const act = (label, method) =>
			listview.page.add_action_item(__(label), () => {
				const names = listview.get_checked_items(true);
				frappe
					.xcall(`erp_connect.api.events.${method}`, { names })
					.then(() => listview.refresh());
			});
		act("Retry", "retry");
		act("Replay", "replay");
	},
};
