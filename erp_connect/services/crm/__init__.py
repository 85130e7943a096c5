"""A CRM's webhooks (HubSpot): each event's object read from the CRM and written through the upsert
path with its pull rule's field map; a won deal becomes a Sales Order or Quotation once."""
