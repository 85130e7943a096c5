"""Numbers and charts for the ERP Connect workspace (Number Cards and Dashboard Chart Sources)."""

import frappe
from frappe.utils import add_days, add_to_date, getdate, now_datetime, nowdate, time_diff_in_seconds
from frappe.utils.dashboard import cache_source

from erp_connect.services.common.status import DEAD, DELIVERED, UNFINISHED

REPLICA_TYPE = "PostgreSQL"


def _check() -> None:
	frappe.has_permission("Sync Event", "read", throw=True)


@frappe.whitelist()
def delivered_24h(filters=None) -> dict:
	"""Number Card: events delivered in the last 24 hours."""
	_check()
	since = add_to_date(now_datetime(), hours=-24)
	value = frappe.db.count("Sync Event", {"status": DELIVERED, "delivered_at": (">", since)})
	return {"value": value, "fieldtype": "Int"}


@frappe.whitelist()
def oldest_pending_age(filters=None) -> dict:
	"""Number Card: how long the oldest event still waiting for delivery has waited (seconds)."""
	_check()
	oldest = frappe.db.sql("select min(creation) from `tabSync Event` where status in %s", [UNFINISHED])[0][0]
	value = int(time_diff_in_seconds(now_datetime(), oldest)) if oldest else 0
	return {"value": value, "fieldtype": "Duration"}


@frappe.whitelist()
def replica_lag(filters=None) -> dict:
	"""Number Card: how long the oldest change not yet in an analytics replica (a PostgreSQL
	connector) has waited, in seconds; 0 when every replica is up to date."""
	_check()
	oldest = frappe.db.sql(
		"""select min(e.creation) from `tabSync Event` e
		join `tabConnector` c on c.name = e.connector
		where e.status in %s and c.connector_type = %s""",
		[UNFINISHED, REPLICA_TYPE],
	)[0][0]
	value = int(time_diff_in_seconds(now_datetime(), oldest)) if oldest else 0
	return {"value": value, "fieldtype": "Duration"}


def _days(timespan_days: int = 14) -> list:
	end = getdate(nowdate())
	return [add_days(end, -i) for i in range(timespan_days - 1, -1, -1)]


def _per_day(rows: list[dict], days: list) -> dict:
	"""Chart data: one dataset per series label, one value per day (0 where nothing happened)."""
	series: dict = {}
	for r in rows:
		series.setdefault(r.label, dict.fromkeys(days, 0))[getdate(r.day)] = round(float(r.value), 2)
	return {
		"labels": [d.strftime("%d %b") for d in days],
		"datasets": [
			{"name": name, "values": list(values.values())} for name, values in sorted(series.items())
		],
	}


# Dashboard Chart Sources: Frappe passes the chart's name, filters and time span; these charts
# always show the last 14 days, so they take what they are given and use none of it.
@frappe.whitelist()
@cache_source
def deliveries_by_connector(**chart_arguments) -> dict:
	"""Chart: per connector and day, events delivered and events that went dead (last 14 days)."""
	_check()
	days = _days()
	rows = frappe.db.sql(
		"""select concat(connector, if(status = %(delivered)s, ' delivered', ' failed')) as label,
			date(coalesce(delivered_at, modified)) as day, count(*) as value
		from `tabSync Event`
		where status in %(finished)s and coalesce(delivered_at, modified) >= %(since)s
		group by label, day""",
		{"delivered": DELIVERED, "finished": (DELIVERED, DEAD), "since": days[0]},
		as_dict=True,
	)
	return _per_day(rows, days)


@frappe.whitelist()
@cache_source
def sync_lag_by_connector(**chart_arguments) -> dict:
	"""Chart: per connector and day, the average seconds from save to delivery (last 14 days)."""
	_check()
	days = _days()
	rows = frappe.db.sql(
		"""select connector as label, date(delivered_at) as day,
			avg(timestampdiff(microsecond, creation, delivered_at)) / 1e6 as value
		from `tabSync Event`
		where status = %s and delivered_at >= %s
		group by label, day""",
		(DELIVERED, days[0]),
		as_dict=True,
	)
	return _per_day(rows, days)
