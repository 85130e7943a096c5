import datetime
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp_connect.engine import encoding, mapping
from erp_connect.engine.mapping import INBOUND, FieldRule, MappingError, map_record, rule_problems

INVOICE = {
	"name": "ACC-SINV-2026-00001",
	"customer": "CUST-0001",
	"posting_date": datetime.date(2026, 11, 24),
	"status": "Paid",
	"grand_total": 118.005,
	"items": [
		{"item_code": "SKU-1", "qty": 2, "rate": 50.0},
		{"item_code": "SKU-2", "qty": 1, "rate": 18.005},
	],
}


def test_scalar_fields_to_nested_paths():
	rules = [FieldRule("name", "id"), FieldRule("customer", "buyer.ref")]
	assert map_record(INVOICE, rules) == {"id": "ACC-SINV-2026-00001", "buyer": {"ref": "CUST-0001"}}


def test_child_table_rows_map_to_a_list():
	rules = [FieldRule("items[].item_code", "lines[].sku"), FieldRule("items[].qty", "lines[].quantity")]
	assert map_record(INVOICE, rules) == {
		"lines": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}]
	}


def test_empty_child_table_gives_an_empty_list():
	assert map_record({"items": []}, [FieldRule("items[].item_code", "lines[].sku")]) == {"lines": []}


def test_value_map_with_and_without_default():
	rule = FieldRule("status", "state", mapping.VALUE_MAP, '{"Paid": "paid", "Unpaid": "open"}')
	assert map_record(INVOICE, [rule]) == {"state": "paid"}
	with pytest.raises(MappingError, match="'Overdue' has no entry"):
		map_record({"status": "Overdue"}, [rule])
	fallback = FieldRule("status", "state", mapping.VALUE_MAP, '{"Paid": "paid", "*": "other"}')
	assert map_record({"status": "Overdue"}, [fallback]) == {"state": "other"}


def test_round_is_half_up_like_money():
	rule = FieldRule("grand_total", "total", mapping.ROUND, "2")
	assert map_record(INVOICE, [rule]) == {"total": 118.01}
	assert map_record(
		{"grand_total": Decimal("2.5")}, [FieldRule("grand_total", "t", mapping.ROUND, "0")]
	) == {"t": 3}
	with pytest.raises(MappingError, match="not a number"):
		map_record({"grand_total": "abc"}, [rule])


def test_date_format_both_directions():
	out = FieldRule("posting_date", "date", mapping.DATE_FORMAT, "%d/%m/%Y")
	assert map_record(INVOICE, [out]) == {"date": "24/11/2026"}
	assert map_record({"posting_date": "2026-11-24"}, [out]) == {"date": "24/11/2026"}
	inbound = FieldRule("date", "posting_date", mapping.DATE_FORMAT, "%d/%m/%Y")
	assert map_record({"date": "24/11/2026"}, [inbound], INBOUND) == {"posting_date": "2026-11-24"}
	stamp = FieldRule("at", "modified", mapping.DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ")
	assert map_record({"at": "2026-11-24T10:30:00Z"}, [stamp], INBOUND) == {"modified": "2026-11-24 10:30:00"}


def test_constant_parses_json_or_keeps_text():
	rules = [
		FieldRule("", "source", mapping.CONSTANT, "erpnext"),
		FieldRule("", "version", mapping.CONSTANT, "2"),
		FieldRule("", "flags", mapping.CONSTANT, '{"test": true}'),
	]
	assert map_record({}, rules) == {"source": "erpnext", "version": 2, "flags": {"test": True}}


def test_template_uses_the_renderer_given():
	rule = FieldRule("customer", "label", mapping.TEMPLATE, "{{ value }}/{{ doc.name }}")

	def render(template, context):
		return template.replace("{{ value }}", context["value"]).replace(
			"{{ doc.name }}", context["doc"]["name"]
		)

	assert map_record(INVOICE, [rule], render_template=render) == {"label": "CUST-0001/ACC-SINV-2026-00001"}
	with pytest.raises(MappingError, match="templates are not available"):
		map_record(INVOICE, [rule])


def test_all_problems_are_reported_together():
	rules = [
		FieldRule("missing_a", "a", required=True),
		FieldRule("customer", "b"),
		FieldRule("missing_c", "c", required=True),
		FieldRule("items[].nothing", "lines[].x", required=True),
	]
	with pytest.raises(MappingError) as e:
		map_record(INVOICE, rules)
	assert e.value.problems == [
		"a: required, but missing_a is empty",
		"c: required, but missing_c is empty",
		"lines[0].x: required, but items[].nothing is empty",
		"lines[1].x: required, but items[].nothing is empty",
	]


def test_optional_missing_fields_become_null():
	assert map_record({}, [FieldRule("customer", "buyer")]) == {"buyer": None}


def test_conflicting_targets_are_a_clear_error():
	with pytest.raises(MappingError, match="already set"):
		map_record(INVOICE, [FieldRule("customer", "buyer"), FieldRule("name", "buyer.id")])


@pytest.mark.parametrize(
	"rule, problem",
	[
		(FieldRule("customer", ""), "target is empty"),
		(FieldRule("cust omer", "a"), "not a dotted path"),
		(FieldRule("a[].b[].c", "x[].y"), "more than one list"),
		(FieldRule("items[].rate", "price"), "[] on both sides"),
		(FieldRule("a", "b", "Magic"), "unknown transform"),
		(FieldRule("a", "b", mapping.VALUE_MAP, None), "needs an option"),
		(FieldRule("a", "b", mapping.VALUE_MAP, "[1, 2]"), "JSON object"),
		(FieldRule("a", "b", mapping.ROUND, "two"), "number of decimals"),
		(FieldRule("a", "b", mapping.DATE_FORMAT, "dd/mm/yyyy"), "strftime"),
	],
)
def test_rule_problems_explain_what_is_wrong(rule, problem):
	assert any(problem in p for p in rule_problems(rule)), rule_problems(rule)


def test_good_rules_have_no_problems():
	assert rule_problems(FieldRule("items[].rate", "lines[].price", mapping.ROUND, "2")) == []
	assert rule_problems(FieldRule("", "source", mapping.CONSTANT, "erpnext")) == []


def test_dumps_handles_erpnext_values():
	text = encoding.dumps(
		{"d": datetime.date(2026, 1, 2), "n": Decimal("1.5"), "t": datetime.timedelta(hours=1)}
	)
	assert json.loads(text) == {"d": "2026-01-02", "n": 1.5, "t": "1:00:00"}
	with pytest.raises(TypeError):
		encoding.dumps({"x": object()})


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(st.dictionaries(names, st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=8))
def test_identity_rules_round_trip_any_flat_record(record):
	rules = [FieldRule(k, f"data.{k}") for k in record]
	back = [FieldRule(f"data.{k}", k) for k in record]
	assert map_record(map_record(record, rules), back, INBOUND) == record


def test_external_id_links_use_the_resolver_given():
	known = {("Customer", "shop-7"): "CUST-0007"}

	def resolve(doctype, external_id):
		if (doctype, external_id) not in known:
			raise ValueError(f"no {doctype} with external id {external_id!r} has been synced")
		return known[(doctype, external_id)]

	rules = [FieldRule("customer_id", "customer", mapping.EXTERNAL_ID_LINK, "Customer")]
	assert map_record({"customer_id": "shop-7"}, rules, INBOUND, resolve_link=resolve) == {
		"customer": "CUST-0007"
	}
	with pytest.raises(MappingError, match="no Customer with external id 'shop-9'"):
		map_record({"customer_id": "shop-9"}, rules, INBOUND, resolve_link=resolve)
	with pytest.raises(MappingError, match="not available"):
		map_record({"customer_id": "shop-7"}, rules, INBOUND)
	assert rule_problems(FieldRule("c", "customer", mapping.EXTERNAL_ID_LINK, None))
