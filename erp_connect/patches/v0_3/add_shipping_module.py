"""0.3 adds the module "ERP Connect Shipping" (Shipment Tracking Event): its Module Def must exist
before the model sync imports its doctype."""

from erp_connect.install import ensure_module_defs


def execute():
	ensure_module_defs()
