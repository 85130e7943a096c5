app_name = "erp_connect"
app_title = "ERP Connect"
app_publisher = "erp_connect developers"
app_description = "Connect ERPNext to webshops, POS terminals, apps and other sites"
app_email = "dev@erp-connect.invalid"
app_license = "mit"

required_apps = ["frappe/erpnext"]

# Keep the controllers' "DF" type blocks in step with the doctype JSON
export_python_type_annotations = True

# Installation
# ------------

after_install = "erp_connect.install.after_install"
before_uninstall = "erp_connect.install.before_uninstall"
after_migrate = "erp_connect.install.after_migrate"

# Document Events
# ---------------
# Every save of every doctype passes through one cheap lookup of the cached push rules, and
# one INSERT when rules matched.

doc_events = {
	"*": {
		"after_insert": "erp_connect.services.push.outbox.on_doc_event",
		"on_update": "erp_connect.services.push.outbox.on_doc_event",
		"on_submit": "erp_connect.services.push.outbox.on_doc_event",
		"on_cancel": "erp_connect.services.push.outbox.on_doc_event",
		"on_trash": "erp_connect.services.push.outbox.on_doc_event",
		"on_update_after_submit": "erp_connect.services.push.outbox.on_doc_event",
		"on_change": "erp_connect.services.push.outbox.on_doc_event",  # writes what the events above collected
	},
	# what ERPNext changes with plain SQL, told by the documents that cause it (services/push/followed.py)
	"Stock Ledger Entry": {"on_submit": "erp_connect.services.push.followed.on_stock_ledger_entry"},
	"Repost Item Valuation": {"on_update": "erp_connect.services.push.followed.on_repost"},
	"Delivery Note": {
		"on_submit": "erp_connect.services.push.followed.on_order_fulfilment",
		"on_cancel": "erp_connect.services.push.followed.on_order_fulfilment",
	},
	"Sales Invoice": {
		"on_submit": "erp_connect.services.push.followed.on_order_fulfilment",
		"on_cancel": "erp_connect.services.push.followed.on_order_fulfilment",
	},
	# refresh token rotation for the OAuth Clients of Mobile App connectors
	"OAuth Bearer Token": {"after_insert": "erp_connect.services.inbound.access.rotate_refresh_token"},
}

# a Delivery Note's Connections list its Shipment Tracking Events (services/shipping/tracking.py)
override_doctype_dashboards = {
	"Delivery Note": "erp_connect.services.shipping.tracking.delivery_note_dashboard",
}

# Outbox rows point at documents that may be deleted; they must not block the deletion.
ignore_links_on_delete = ["Sync Event", "Sync Link", "Sync Conflict", "POS Operation"]

# Request Events
# --------------

after_request = ["erp_connect.services.inbound.access.add_retry_after"]

# Scheduled Tasks
# ---------------

scheduler_events = {
	"cron": {
		"* * * * *": [
			"erp_connect.services.push.delivery.sweep",
			"erp_connect.services.inbound.inbox.sweep",
			"erp_connect.services.inbound.imports.sweep",
			"erp_connect.services.pull.runs.run_due_rules",
			"erp_connect.services.pos.applier.sweep",
			"erp_connect.services.push.replica.sweep",
		]
	},
	"daily": [
		"erp_connect.services.push.events.delete_old_deliveries",
		"erp_connect.services.inbound.idempotency.delete_expired",
	],
}
