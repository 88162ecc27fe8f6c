"""Which audit events an endpoint may subscribe to (audit/events.py names them).

Sign-ins, the admin site's own rows and the webhooks' own events are not sent:
they say who signed in from where, or would echo deliveries back as deliveries.
"""

from __future__ import annotations

from audit.events import Event

SENT_PREFIXES = ("tenant.", "user.registered", "invite.", "license.", "lease.")

WEBHOOK_EVENTS: frozenset[str] = frozenset(str(event) for event in Event if event.startswith(SENT_PREFIXES))

# Sent to one endpoint when its owner asks for a test (POST .../ping); no subscription needed.
PING_EVENT = "webhook.ping"
