"""`manage.py prune_webhook_deliveries`: what the daily Celery task does, for a
server without a broker (the embedded default) or by hand."""

from django.core.management.base import BaseCommand

from webhooks.services import deliveries_prune


class Command(BaseCommand):
    help = (
        "Delete finished webhook deliveries older than WEBHOOK_DELIVERY_RETENTION_DAYS (never a pending one)."
    )

    def handle(self, *args, **options):
        deleted = deliveries_prune()
        self.stdout.write(f"{deleted} webhook deliveries deleted.")
