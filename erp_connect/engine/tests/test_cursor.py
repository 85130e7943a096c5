import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp_connect.engine.cursor import Cursor, InvalidCursor, access_fingerprint, after, settle


def test_round_trip_and_empty_cursor():
	cursor = Cursor("2026-11-24 10:00:00.000001", "CUST-0001", "2026-11-24 09:00:00", "DEL-1")
	assert Cursor.decode(cursor.encode()) == cursor
	assert Cursor.decode(None) == Cursor() == Cursor.decode("")


@pytest.mark.parametrize(
	"token", ["not base64!!", "e30", "eyJ2IjogMn0", "W10", "eyJ2IjoxLCJtb2RpZmllZCI6MX0"]
)
def test_tampered_or_foreign_cursors_are_refused(token):
	with pytest.raises(InvalidCursor):
		Cursor.decode(token)


@given(st.text(max_size=30), st.text(max_size=30))
def test_any_position_round_trips(modified, name):
	assert Cursor.decode(Cursor(modified, name).encode()) == Cursor(modified, name)


def test_after_trims_the_extra_row_and_reports_more():
	rows = [{"modified": f"t{i}", "name": f"n{i}"} for i in range(4)]
	page, more, last = after(rows, ("modified", "name"), 3)
	assert (len(page), more, last) == (3, True, ("t2", "n2"))
	assert after(rows[:2], ("modified", "name"), 3) == (rows[:2], False, ("t1", "n1"))
	assert after([], ("modified", "name"), 3) == ([], False, None)


def test_a_cursor_of_version_1_is_read_as_between_passes():
	fields = {"modified": "2026-11-24 10:00:00", "name": "C-1", "deleted_at": "", "deleted_name": ""}
	token = base64.urlsafe_b64encode(json.dumps({"v": 1, **fields}).encode()).decode().rstrip("=")
	assert Cursor.decode(token) == Cursor(**fields, horizon="")
	horizon = Cursor(**fields, horizon="2026-11-24 09:55:00.000000")
	assert Cursor.decode(horizon.encode()) == horizon


def test_settle_never_hands_out_a_position_past_the_horizon():
	horizon = "2026-11-24 09:55:00.000000"
	assert settle(("2026-11-24 10:00:00.000000", "C-9"), horizon) == (horizon, "")
	assert settle(("2026-11-24 09:00:00.000000", "C-9"), horizon) == ("2026-11-24 09:00:00.000000", "C-9")
	assert settle(("", ""), horizon) == ("", "")  # nothing read yet: from the beginning


def test_cursors_of_version_2_read_as_without_access_and_the_access_round_trips():
	fields = {"modified": "2026-11-24 10:00:00", "name": "C-1", "deleted_at": "", "deleted_name": ""}
	v2 = {"v": 2, **fields, "horizon": "2026-11-24 09:55:00.000000"}
	token = base64.urlsafe_b64encode(json.dumps(v2).encode()).decode().rstrip("=")
	assert Cursor.decode(token) == Cursor(**fields, horizon="2026-11-24 09:55:00.000000", access="")
	with_access = Cursor(**fields, access="3f9c2a1b7d4e")
	assert Cursor.decode(with_access.encode()) == with_access


def test_the_access_fingerprint_ignores_order_and_sees_every_change():
	rows = [["Customer", "Acme", None, 1], ["Customer", "Bolt", None, 1]]
	same = access_fingerprint({"roles": ["Sales User", "All"], "permissions": rows})
	assert same == access_fingerprint({"permissions": rows[::-1], "roles": ["All", "Sales User"]})
	assert same != access_fingerprint({"roles": ["Sales User", "All"], "permissions": rows[:1]})
	assert same != access_fingerprint({"roles": ["All"], "permissions": rows})
	assert same != access_fingerprint(
		{"roles": ["Sales User", "All"], "permissions": [*rows, ["Item", "X", None, 0]]}
	)
