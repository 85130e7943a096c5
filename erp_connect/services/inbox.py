"""Old dotted path (before 0.2) of jobs queued or scheduled by an earlier version; remove in 0.3."""

from erp_connect.services.inbound.inbox import process, sweep
