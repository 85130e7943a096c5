"""Several rows in one INSERT: one round trip for a batch of outbox events, links or POS
operations instead of one per row (Frappe's own db_insert writes one row at a time)."""

import functools
from collections.abc import Sequence

import frappe


@functools.lru_cache(maxsize=256)
def _insert_sql(table: str, columns: tuple[str, ...], count: int, keep_existing: bool) -> str:
	row = "(" + ", ".join(["%s"] * len(columns)) + ")"
	sql = "insert into `tab{}` ({}) values {}".format(
		table, ", ".join(f"`{c}`" for c in columns), ", ".join([row] * count)
	)
	return sql + " on duplicate key update name = name" if keep_existing else sql


def insert_rows(
	doctype: str, columns: tuple[str, ...], rows: Sequence[Sequence], keep_existing: bool = False
) -> None:
	"""INSERT ``rows`` (value tuples in ``columns`` order); with ``keep_existing`` a row whose key
	exists already is left as it is instead of failing the statement."""
	if rows:
		frappe.db.sql(
			_insert_sql(doctype, columns, len(rows), keep_existing), [v for row in rows for v in row]
		)
