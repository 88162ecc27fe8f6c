"""One-time tokens of the operator console's confirming forms (a double click acts once)."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('licenses', '0006_license_blocks'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConsoleNonce',
            fields=[
                ('digest', models.CharField(max_length=64, primary_key=True, serialize=False)),
                ('user_id', models.UUIDField()),
                ('action', models.CharField(max_length=40)),
                ('license_id', models.UUIDField(blank=True, null=True)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('used_at', models.DateTimeField(blank=True, null=True)),
                ('result', models.CharField(blank=True, default='', max_length=300)),
            ],
            options={
                'db_table': 'licenses_console_nonce',
            },
        ),
    ]
