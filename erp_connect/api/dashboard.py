"""Numbers and charts for the ERP Connect workspace (Number Cards and Dashboard Chart Sources)."""

import frappe
from frappe.utils import add_days, add_to_date, getdate, now_datetime, nowdate, time_diff_in_seconds
from frappe.utils.dashboard import cache_source


def _check() -> None:
	frappe.has_permission("Sync Event", "read", throw=True)


@frappe.whitelist()
def delivered_24h(filters=None) -> dict:
	"""Number Card: events delivered in the last 24 hours."""
	_check()
	since = add_to_date(now_datetime(), hours=-24)
	value = frappe.db.count("Sync Event", {"status": "Delivered", "delivered_at": (">", since)})
	return {"value": value, "fieldtype": "Int"}


@frappe.whitelist()
def oldest_pending_age(filters=None) -> dict:
	"""Number Card: how long the oldest event still waiting for delivery has waited (seconds)."""
	_check()
	oldest = frappe.db.sql(
		"select min(creation) from `tabSync Event` where status in ('Pending', 'Sending', 'Retrying')"
	)[0][0]
	value = int(time_diff_in_seconds(now_datetime(), oldest)) if oldest else 0
	return {"value": value, "fieldtype": "Duration"}


def _days(timespan_days: int = 14) -> list:
	end = getdate(nowdate())
	return [add_days(end, -i) for i in range(timespan_days - 1, -1, -1)]


@frappe.whitelist()
@cache_source
def deliveries_by_connector(
	chart_name=None,
	chart=None,
	no_cache=None,
	filters=None,
	from_date=None,
	to_date=None,
	timespan=None,
	time_interval=None,
	heatmap_year=None,
) -> dict:
	"""Chart: per connector and day, events delivered and events that went dead (last 14 days)."""
	_check()
	days = _days()
	rows = frappe.db.sql(
		"""select connector, date(coalesce(delivered_at, modified)) as day, status, count(*) as n
		from `tabSync Event`
		where status in ('Delivered', 'Dead') and coalesce(delivered_at, modified) >= %s
		group by connector, day, status""",
		days[0],
		as_dict=True,
	)
	series: dict = {}
	for r in rows:
		label = f"{r.connector} {'delivered' if r.status == 'Delivered' else 'failed'}"
		series.setdefault(label, dict.fromkeys(days, 0))[getdate(r.day)] = r.n
	return {
		"labels": [d.strftime("%d %b") for d in days],
		"datasets": [
			{"name": name, "values": list(values.values())} for name, values in sorted(series.items())
		],
	}


@frappe.whitelist()
@cache_source
def sync_lag_by_connector(
	chart_name=None,
	chart=None,
	no_cache=None,
	filters=None,
	from_date=None,
	to_date=None,
	timespan=None,
	time_interval=None,
	heatmap_year=None,
) -> dict:
	"""Chart: per connector and day, the average seconds from save to delivery (last 14 days)."""
	_check()
	days = _days()
	rows = frappe.db.sql(
		"""select connector, date(delivered_at) as day,
			avg(timestampdiff(microsecond, creation, delivered_at)) / 1e6 as lag
		from `tabSync Event`
		where status = 'Delivered' and delivered_at >= %s
		group by connector, day""",
		days[0],
		as_dict=True,
	)
	series: dict = {}
	for r in rows:
		series.setdefault(r.connector, dict.fromkeys(days, 0))[getdate(r.day)] = round(float(r.lag), 2)
	return {
		"labels": [d.strftime("%d %b") for d in days],
		"datasets": [
			{"name": name, "values": list(values.values())} for name, values in sorted(series.items())
		],
	}
