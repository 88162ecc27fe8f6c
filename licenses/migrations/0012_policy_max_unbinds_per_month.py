# Issue 16: a monthly cap on the machines a tenant admin unbinds from a license
# (the dashboard), on the policy, with a license's override.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('licenses', '0011_policy_day_limits'),
    ]

    operations = [
        migrations.AddField(
            model_name='policy',
            name='max_unbinds_per_month',
            field=models.PositiveIntegerField(blank=True, help_text='Machines a tenant admin may unbind from one license per calendar month (UTC), on the dashboard. Empty: no cap; 0: tenant admins may not unbind. Operators are never capped.', null=True),
        ),
        migrations.AddField(
            model_name='license',
            name='max_unbinds_per_month',
            field=models.PositiveIntegerField(blank=True, help_text="Machines a tenant admin may unbind per calendar month (UTC); 0: none. Empty: the policy's (whose empty is no cap).", null=True),
        ),
    ]
