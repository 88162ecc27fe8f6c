# The notices a tenant admin sets per license on the dashboard (issue 16).
# Numbered 0013: the licenses migration 0012 of the same issue (the policy's
# monthly unbind cap) comes first once both are merged; until then this
# follows 0011.

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("licenses", "0012_policy_max_unbinds_per_month"),
    ]

    operations = [
        migrations.AddField(
            model_name="license",
            name="notify_seats",
            field=models.BooleanField(default=True, help_text="Tell the admins when seats run short."),
        ),
        migrations.AddField(
            model_name="license",
            name="notify_seats_percent",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="Percent of the seats in use that is near the limit. Empty: the server's default.",
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(100),
                ],
            ),
        ),
        migrations.AddField(
            model_name="license",
            name="notify_expiry",
            field=models.BooleanField(default=True, help_text="Tell the admins before the license expires."),
        ),
        migrations.AddField(
            model_name="license",
            name="notify_expiry_days",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="Days before the expiry to tell them. Empty: the server's default days.",
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(365),
                ],
            ),
        ),
        migrations.AddField(
            model_name="license",
            name="notify_email",
            field=models.BooleanField(default=True, help_text="Notices go by email to the tenant's admins."),
        ),
        migrations.AddField(
            model_name="license",
            name="notify_webhook",
            field=models.BooleanField(
                default=True, help_text="Notices go to the tenant's webhook endpoints that subscribe to them."
            ),
        ),
    ]
