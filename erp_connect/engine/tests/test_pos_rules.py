import base64
import json
import time

import pytest

from erp_connect.engine import pos_rules


def sale(**data):
	return {
		"client_id": "0192c0de-0000-7000-8000-000000000001",
		"type": "sales_invoice",
		"timestamp": "2026-11-24T10:00:00+01:00",
		"data": {
			"customer": "Walk-in",
			"items": [{"item_code": "A", "qty": 2, "rate": 5.0}],
			"payments": [{"mode_of_payment": "Cash", "amount": 10}],
			**data,
		},
	}


def test_a_good_sale_customer_and_adjustment_have_no_problems():
	assert pos_rules.problems(sale()) == []
	customer = {**sale(), "type": "customer", "data": {"customer_name": "Ann", "mobile_no": "123"}}
	assert pos_rules.problems(customer) == []
	adjust = {**sale(), "type": "stock_adjustment", "data": {"item_code": "A", "qty": -1, "reason": "broken"}}
	assert pos_rules.problems(adjust) == []


@pytest.mark.parametrize(
	"op, expected",
	[
		("not an object", "must be a JSON object"),
		({**sale(), "client_id": "short"}, "client_id must be"),
		({**sale(), "client_id": "x' or 1=1 --"}, "client_id must be"),
		({**sale(), "type": "refund"}, "type must be one of"),
		({**sale(), "timestamp": "2026-11-24T10:00:00"}, "with a time zone"),
		({**sale(), "extra": 1}, "unknown keys extra"),
		({**sale(), "data": []}, "data must be a JSON object"),
		(sale(customer_client_id="c-123456789"), "not both"),
		(sale(items=[]), "items must be a list of 1 to"),
		(sale(items=[{"item_code": "A", "qty": 1, "rate": 1, "discount": 5}]), "items[0] needs"),
		(sale(items=[{"item_code": "A", "qty": "2", "rate": 1}]), "must be numbers"),
		(sale(items=[{"item_code": "A", "qty": float("nan"), "rate": 1}]), "must be numbers"),
		(sale(items=[{"item_code": "A", "qty": -1, "rate": 1}]), "must be positive"),
		(sale(is_return=True, return_against="SINV-1"), "must be negative on a return"),
		(sale(is_return=True), "a return needs either"),
		(sale(payments=[{"mode_of_payment": "Cash"}]), "payments[0] needs"),
		(sale(price=1), "sales_invoice has no fields price"),
		({**sale(), "type": "customer", "data": {"customer_name": " "}}, "customer_name is required"),
		({**sale(), "type": "stock_adjustment", "data": {"item_code": "A", "qty": 0}}, "non-zero"),
	],
)
def test_bad_operations_are_named(op, expected):
	assert any(expected in p for p in pos_rules.problems(op)), pos_rules.problems(op)


def test_dependencies_and_content_hash():
	op = sale(
		customer=None, customer_client_id="cust-0001", is_return=True, return_against_client_id="sale-0001"
	)
	op["data"]["items"][0]["qty"] = -2
	assert pos_rules.problems(op) == []
	assert pos_rules.dependencies(op) == ["cust-0001", "sale-0001"]
	assert pos_rules.dependencies(sale()) == []
	assert pos_rules.content_hash(sale()) == pos_rules.content_hash(sale())
	assert pos_rules.content_hash(sale()) != pos_rules.content_hash(sale(customer="Bob"))


def test_feed_cursor_round_trip_age_and_tampering():
	positions = {"item": ["2026-11-24 10:00:00.000001", "ITEM-1"], pos_rules.DELETED: ["2026-11-24", ""]}
	cursor = pos_rules.FeedCursor(positions, time.time(), "abc")
	assert pos_rules.FeedCursor.decode(cursor.encode()) == cursor
	assert pos_rules.FeedCursor.decode(None) is None
	moved = cursor.moved("price", "2026-11-24", "P-1")
	assert moved.positions == {**cursor.positions, "price": ["2026-11-24", "P-1"]}
	assert not cursor.too_old(time.time())
	assert cursor.too_old(time.time() + 31 * 86400)
	for token in ("garbage", "e30", pos_rules.FeedCursor({"orders": ["a", "b"]}, 1, "s").encode()):
		with pytest.raises(pos_rules.InvalidCursor):
			pos_rules.FeedCursor.decode(token)
	assert pos_rules.setup_hash("a", "b") != pos_rules.setup_hash("a", "c")


def test_a_cursor_without_its_deletions_position_is_refused():
	# every cursor the feed hands out has one (a full snapshot starts it); one without it is forged
	forged = pos_rules.FeedCursor({"item": ["2026-11-24 10:00:00", "ITEM-1"]}, time.time(), "abc").encode()
	with pytest.raises(pos_rules.InvalidCursor):
		pos_rules.FeedCursor.decode(forged)


def test_feed_cursor_passes_end_at_their_horizon():
	horizon = "2026-11-24 09:55:00.000000"
	positions = {
		"item": ["2026-11-24 10:00:00.000001", "ITEM-1"],
		"stock": ["2026-11-24 09:00:00", "B-1"],
		pos_rules.DELETED: ["2026-11-24 08:00:00", ""],
	}
	cursor = pos_rules.FeedCursor(positions, 1.0, "abc").in_pass(horizon)
	assert pos_rules.FeedCursor.decode(cursor.encode()) == cursor
	assert cursor.moved("price", "t", "P-1").horizon == horizon
	settled = cursor.settled(horizon)
	assert settled.positions == {**positions, "item": [horizon, ""]}
	assert (settled.horizon, settled.issued, settled.setup) == ("", 1.0, "abc")
	# a cursor issued before horizons existed: between passes
	old = {"v": 1, "p": positions, "i": 1.0, "s": "abc"}
	token = base64.urlsafe_b64encode(json.dumps(old).encode()).decode().rstrip("=")
	assert pos_rules.FeedCursor.decode(token) == pos_rules.FeedCursor(positions, 1.0, "abc")


def test_what_a_terminal_charged_is_its_lines_and_the_taxes_it_listed():
	data = sale(
		items=[
			{"item_code": "A", "qty": 3, "rate": 3.333, "price_list_rate": 4, "discount_amount": 0.667},
			{"item_code": "B", "qty": 1, "rate": 10, "discount_percentage": 0},
		],
		taxes=[{"account_head": "VAT - X", "amount": 1.9, "description": "VAT 19%"}],
	)
	assert pos_rules.problems(data) == []
	assert pos_rules.charged_total(data["data"]) == 21.9  # 10.00 (3 x 3.333 to the cent) + 10 + 1.90
	assert pos_rules.charged_total(sale()["data"]) == 10


@pytest.mark.parametrize(
	"data, expected",
	[
		({"taxes": {"VAT": 1}}, "taxes must be a list"),
		({"taxes": [{"account_head": "VAT"}]}, "taxes[0] needs account_head and amount"),
		({"taxes": [{"account_head": "VAT", "amount": 1, "rate": 19}]}, "taxes[0] needs"),
		({"coupon_code": ""}, "coupon_code must be text"),
		({"loyalty_points": 2.5}, "positive whole number"),
		({"loyalty_points": -3}, "positive whole number"),
		({"items": [{"item_code": "A", "qty": 1, "rate": 5, "discount_percentage": 120}]}, "0 to 100"),
		({"items": [{"item_code": "A", "qty": 1, "rate": 5, "price_list_rate": -1}]}, "not negative"),
		({"items": [{"item_code": "A", "qty": 2, "rate": 5, "serial_no": ["S1"]}]}, "one distinct serial"),
		({"items": [{"item_code": "A", "qty": 2, "rate": 5, "serial_no": ["S1", "S1"]}]}, "distinct"),
		({"items": [{"item_code": "A", "qty": 1, "rate": 5, "serial_no": "S1"}]}, "list of serial"),
		({"items": [{"item_code": "A", "qty": 1, "rate": 5, "batch_no": 7}]}, "batch_no must be text"),
		({"items": [{"item_code": "A", "qty": 1, "rate": 5, "warehouse": "X"}]}, "nothing else"),
	],
)
def test_bad_charges_coupons_points_and_serials_are_named(data, expected):
	found = pos_rules.problems(sale(**data))
	assert any(expected in p for p in found), found


def test_a_return_redeems_no_points_and_serials_count_units():
	refund = sale(
		is_return=1,
		return_against="SINV-1",
		items=[{"item_code": "A", "qty": -2, "rate": 5, "serial_no": ["S1", "S2"]}],
		payments=[{"mode_of_payment": "Cash", "amount": -10}],
	)
	assert pos_rules.problems(refund) == []
	refund["data"]["loyalty_points"] = 5
	assert any("cannot redeem" in p for p in pos_rules.problems(refund))


def test_the_discount_a_till_gave_is_the_one_it_names_or_the_gap_to_its_list_price():
	assert pos_rules.till_discount({"rate": 90, "price_list_rate": 100, "discount_percentage": 10}) == (10, 0)
	assert pos_rules.till_discount({"rate": 95, "price_list_rate": 100, "discount_amount": 5}) == (0, 5)
	assert pos_rules.till_discount({"rate": 80, "price_list_rate": 100}) == (0, 20)
	assert pos_rules.till_discount({"rate": 120, "price_list_rate": 100}) == (0, 0)  # a mark-up: no discount
	assert pos_rules.till_discount({"rate": 80}) == (0, 0)


def shift_op(kind: str, **data):
	return {**sale(), "client_id": "0192c0de-0000-7000-8000-0000000000aa", "type": kind, "data": data}


def test_shift_operations_and_a_sale_in_a_shift():
	cash = [{"mode_of_payment": "Cash", "amount": 50}]
	assert pos_rules.problems(shift_op("shift_open", opening_amounts=cash)) == []
	assert pos_rules.problems(shift_op("shift_open", opening_amounts=[])) == []
	close = shift_op("shift_close", shift_client_id="open-0000001", closing_amounts=cash)
	assert pos_rules.problems(close) == []
	assert pos_rules.dependencies(close) == ["open-0000001"]
	in_shift = sale(shift_client_id="open-0000001", customer_client_id="cust-0000001")
	assert pos_rules.problems({**in_shift, "data": {**in_shift["data"], "customer": None}}) == []
	assert pos_rules.dependencies(in_shift) == ["cust-0000001", "open-0000001"]
	assert pos_rules.BARRIERS == {"shift_close"}


@pytest.mark.parametrize(
	"op, expected",
	[
		(shift_op("shift_open"), "opening_amounts must be a list"),
		(shift_op("shift_open", opening_amounts=[{"mode_of_payment": "Cash"}]), "opening_amounts[0] needs"),
		(
			shift_op("shift_open", opening_amounts=[{"mode_of_payment": "Cash", "amount": -1}]),
			"not negative",
		),
		(shift_op("shift_open", opening_amounts=[], user="x"), "shift_open has no fields user"),
		(shift_op("shift_close", closing_amounts=[]), "shift_client_id is required"),
		(
			shift_op("shift_close", shift_client_id="o-1234567", closing_amounts=[{"amount": 1}]),
			"closing_amounts[0] needs",
		),
		(
			shift_op(
				"shift_close",
				shift_client_id="o-1234567",
				closing_amounts=[{"mode_of_payment": "Cash", "amount": 1}] * 2,
			),
			"Cash is counted twice",
		),
		(sale(shift_client_id=5), "shift_client_id must be"),
	],
)
def test_bad_shift_operations_are_named(op, expected):
	assert any(expected in p for p in pos_rules.problems(op)), pos_rules.problems(op)
