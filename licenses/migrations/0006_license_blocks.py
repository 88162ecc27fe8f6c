"""Blocks of machines and users on a license (the operator console's "block")."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('licenses', '0005_borrowed_lease'),
    ]

    operations = [
        migrations.AddField(
            model_name='license',
            name='blocks',
            field=models.JSONField(blank=True, default=list),
        ),
    ]
