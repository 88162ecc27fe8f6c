"""What the tenants app tells the apps above it, without importing them (only
core is below it: tenants may not know about audit or accounts)."""

from django.dispatch import Signal

# Sent by tenants.services.tenant_create inside the creating transaction, in
# the new tenant's scope, with `tenant` and `actor` (the user who created it,
# or None from the shell). Receivers run in that transaction: a receiver that
# raises undoes the creation. The audit app records it (audit.apps).
tenant_created = Signal()
