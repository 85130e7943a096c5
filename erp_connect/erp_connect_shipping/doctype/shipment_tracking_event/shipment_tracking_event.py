# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document

from erp_connect.services.shipping import tracking


class ShipmentTrackingEvent(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		carrier: DF.Data | None
		carrier_detail: DF.Data | None
		delivery_note: DF.Link | None
		event_time: DF.Datetime
		location: DF.Data | None
		message: DF.SmallText | None
		status: DF.Literal[
			"Pre-Transit", "In Transit", "Out for Delivery", "Delivered", "Returned", "Failed", "Unknown"
		]
		tracker_id: DF.Data | None
		tracking_number: DF.Data

	# end: auto-generated types
	def validate(self):
		self.delivery_note = tracking.delivery_note_of(self.tracking_number)

	def on_update(self):
		tracking.update_delivery_note(self.delivery_note)


def on_doctype_update():
	frappe.db.add_index("Shipment Tracking Event", ["delivery_note", "event_time"], "by_note_time")
