// Copyright (c) 2026, erp_connect developers
// For license information, please see license.txt

frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["ERP Connect Deliveries"] = {
	method: "erp_connect.api.dashboard.deliveries_by_connector",
	filters: [],
};
