"""The periodic grace sweep: licenses whose failed Stripe payment's grace ran out are suspended."""

from __future__ import annotations

from celery import shared_task

from billing.services import payment_grace_sweep


@shared_task(name="billing.payment_grace_sweep")
def payment_grace_sweep_task() -> int:
    return payment_grace_sweep()
