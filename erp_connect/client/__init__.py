"""Reference client for erp_connect's offline POS API: plain Python (stdlib + requests), no Frappe."""

from erp_connect.client.pos import (
	AuthError,
	PermanentError,
	PosClient,
	PosError,
	TransientError,
	backoff_delay,
	uuid7,
)

__all__ = ["AuthError", "PermanentError", "PosClient", "PosError", "TransientError", "backoff_delay", "uuid7"]
