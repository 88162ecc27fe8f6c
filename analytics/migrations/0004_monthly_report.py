# Monthly usage reports (issue 16, "Reports by themselves"). Named 0004: another
# branch of issue 16 adds analytics 0003; whichever lands second depends on the other.

import django.db.models.deletion
from django.db import migrations, models

import tenants.rls


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0002_usage_rollup_run'),
        ('licenses', '0001_initial'),
        ('tenants', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='MonthlyReport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('month', models.DateField(help_text='The first day of the UTC month reported on.')),
                ('max_seats', models.PositiveIntegerField(help_text="The license's seat limit when the report was made.")),
                ('peak_seats', models.PositiveIntegerField(default=0, help_text='Most seats held at one instant.')),
                ('average_seats', models.FloatField(default=0.0, help_text="The mean of the month's hourly peaks (every hour counts, idle ones as 0).")),
                ('acquisitions', models.PositiveIntegerField(default=0)),
                ('denials', models.PositiveIntegerField(default=0)),
                ('denials_by_code', models.JSONField(blank=True, default=dict)),
                ('sessions_ended', models.PositiveIntegerField(default=0)),
                ('session_seconds', models.FloatField(default=0.0)),
                ('top_users', models.JSONField(blank=True, default=list, help_text='[{"email", "seconds", "sessions"}], most session time first.')),
                ('overdraft_seats', models.PositiveIntegerField(default=0, help_text='Seats held beyond max_seats at the peak: max(0, peak - max_seats).')),
                ('csv_text', models.TextField(help_text='The CSV attached to the email (and downloaded from the dashboard).')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('emailed_at', models.DateTimeField(blank=True, null=True)),
                ('emailed_to', models.PositiveIntegerField(default=0, help_text='How many admins it was sent to.')),
                ('license', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='licenses.license')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'db_table': 'monthly_report',
                'ordering': ['-month', 'license_id'],
                'indexes': [models.Index(fields=['tenant', 'month'], name='monthly_report_tenant_month')],
                'constraints': [models.UniqueConstraint(fields=('license', 'month'), name='monthly_report_unique')],
            },
        ),
        tenants.rls.EnableRowLevelSecurity("monthly_report"),
    ]
