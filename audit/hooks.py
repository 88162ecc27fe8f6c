"""Work that must commit with an audit row, for apps on higher floors.

Audit (floor 2) cannot import the apps that act on its events (webhooks, floor
3); they connect here instead, as audit itself connects to `tenant_created`.
An `AuditHook` is asked, before a row is written, whether it wants the event
(`wants`: cheap, on every event, so it reads a cache, never the database by
default) and, once the row is written, is handed the row (`written`) inside
the row's own transaction: whatever it writes commits or rolls back with the
row and the change the row records. Every audit row is written through
`audit.services._append`, so no writer of the log is missed (none writes
`AuditLog` in bulk; a bulk insert would bypass this, and signals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import uuid

    from audit.models import AuditLog


class AuditHook(Protocol):
    def wants(self, action: str, tenant_id: uuid.UUID | None) -> bool: ...

    def written(self, row: AuditLog) -> None: ...


_hooks: dict[str, AuditHook] = {}


def audit_hook_connect(name: str, hook: AuditHook) -> None:
    """Connect `hook` under `name` (connecting a name again replaces it)."""
    _hooks[name] = hook


def audit_hook_disconnect(name: str) -> None:
    _hooks.pop(name, None)


def audit_hooks_want(action: str, tenant_id: uuid.UUID | None) -> bool:
    return any(hook.wants(action, tenant_id) for hook in _hooks.values())


def audit_hooks_run(row: AuditLog) -> None:
    """Hand a just-written row to the hooks that want it (in its transaction)."""
    for hook in list(_hooks.values()):
        if hook.wants(row.action, row.tenant_id):
            hook.written(row)
