"""Reading a table in (stamp, name) order strictly after a position, page by page: the change
feed and the POS feed both page this way, so equal timestamps across pages lose nothing. Both read
in passes that end at a horizon (engine/cursor.py), so a late commit is not lost either."""

import datetime

from frappe.utils import now_datetime

from erp_connect.engine.cursor import SETTLE_SECONDS


def horizon() -> str:
	"""The horizon of a pass starting now: a stamp before which every transaction has committed.
	Taken before the pass reads anything, in the site's time as Frappe stamps ``modified``."""
	moment = now_datetime() - datetime.timedelta(seconds=SETTLE_SECONDS)
	return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def next_rows(read, stamp_field: str, stamp: str, name: str, count: int) -> list[dict]:
	"""The next ``count`` rows strictly after (stamp, name) in (stamp_field, name) order. Frappe's
	filters cannot say "or", so: the same stamp with a later name, then the later stamps."""
	if not stamp:
		return read([], count)
	same = read([[stamp_field, "=", stamp], ["name", ">", name]], count)
	later = read([[stamp_field, ">", stamp]], count - len(same)) if len(same) < count else []
	return same + later
