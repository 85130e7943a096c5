"""The statuses of a Sync Event, named once: the outbox, the drain, Desk and the health banner
all speak of the same five (and Dry Run)."""

PENDING = "Pending"
SENDING = "Sending"
RETRYING = "Retrying"
DELIVERED = "Delivered"
DEAD = "Dead"
DRY_RUN = "Dry Run"

UNFINISHED = (PENDING, SENDING, RETRYING)  # still owed to the receiver
WAITING = (PENDING, RETRYING)  # due at next_attempt_at; Sending is due when its lease runs out
RETRYABLE = (DEAD, RETRYING, PENDING)  # what Desk may send again

# What an inbound record became (upsert results, Sync Run counts, import counts)
CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
CANCELLED = "cancelled"
CONFLICT = "conflict"
ERROR = "error"
RECORD_STATUSES = (CREATED, UPDATED, UNCHANGED, CANCELLED, CONFLICT, ERROR)
