// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["ERP Connect Sync Lag"] = {
	method: "erp_connect.api.dashboard.sync_lag_by_connector",
	filters: [],
};
