// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

const BANNER_COLOURS = { healthy: "green", degraded: "orange", failing: "red", disabled: "gray" };

frappe.ui.form.on("Connector", {
	refresh(frm) {
		if (frm.is_new()) return;
		show_health(frm);
		show_recent_activity(frm);
		frm.add_custom_button(__("Test Connection"), () => {
			frm.call("test_connection").then(({ message: r }) => {
				frappe.msgprint({
					title: r.ok ? __("Connection OK") : __("Connection Failed"),
					indicator: r.ok ? "green" : "red",
					message: r.elapsed_ms != null ? `${r.message} (${r.elapsed_ms} ms)` : r.message,
				});
			});
		});
		const toggle = frm.doc.paused ? ["resume", __("Resume")] : ["pause", __("Pause")];
		frm.add_custom_button(toggle[1], () => frm.call(toggle[0]).then(() => frm.reload_doc()));
		frm.add_custom_button(__("Guided Setup"), () => {
			frappe.prompt(
				{
					fieldname: "preset",
					fieldtype: "Select",
					label: __("This connector is"),
					options: frm.doc.__onload.presets, // every preset Guided Setup knows
					reqd: 1,
				},
				({ preset }) =>
					frm.call("apply_preset", { preset }).then(({ message: r }) => {
						frappe.msgprint({
							title: __("Rules created"),
							message: `${r.created.join(", ") || __("none (they exist already)")}<br><br>${r.next_steps}`,
						});
						frm.reload_doc();
					}),
				__("Guided Setup")
			);
		});
		frm.add_custom_button(__("Sync Events"), () =>
			frappe.set_route("List", "Sync Event", { connector: frm.doc.name })
		);
	},
});

function show_health(frm) {
	frm.call("health").then(({ message: h }) => {
		const counts = __("{0} pending, {1} retrying, {2} dead, {3} delivered in 24 h", [
			h.pending, h.retrying, h.dead, h.delivered_24h,
		]);
		const reason = h.reason ? `: ${frappe.utils.escape_html(h.reason)}` : "";
		// the lag: how old the oldest change is that has not reached the system yet
		const lag = h.oldest_waiting_seconds ? ` &middot; ${__("lag {0} s", [h.oldest_waiting_seconds])}` : "";
		frm.dashboard.set_headline_alert(
			`<b>${__(frappe.utils.to_title_case(h.state))}</b>${reason} &middot; ${counts}${lag}`,
			BANNER_COLOURS[h.state]
		);
	});
}

function show_recent_activity(frm) {
	frm.call("recent_activity").then(({ message: a }) => {
		const row = (cells) => `<tr>${cells.map((c) => `<td>${frappe.utils.escape_html(String(c ?? ""))}</td>`).join("")}</tr>`;
		const events = a.events.map((e) =>
			row([e.modified, e.status, `${e.reference_doctype} ${e.reference_name}`, e.doc_event, e.last_status_code])
		);
		const runs = a.runs.map((r) => row([r.started_at, r.status, r.pull_rule, `+${r.created} ~${r.updated} !${r.failed}`, ""]));
		const inbound = a.inbound.map((i) => row([i.creation, i.status, __("webhook received"), "", ""]));
		const html = [...events, ...runs, ...inbound].join("") || row([__("No activity yet")]);
		const section = frm.dashboard.add_section(
			`<table class="table table-sm">${html}</table>`,
			__("Recent Activity")
		);
		section.attr("data-section", "recent-activity");
	});
}
