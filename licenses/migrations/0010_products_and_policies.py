"""Products and policies (issue 15): every existing license moves to a default
policy without changing behaviour.

Existing licenses keep their own lease TTL, offline grace, borrow limit,
machine limit and entitlements as overrides (the columns become nullable,
empty meaning "the policy's", but no existing row is emptied), so what each
acquires is what it acquired before. The default policy's values are the
server's LICENSE_DEFAULT_* settings, no trial, no grace after expiry, no
maintenance end; its catalog holds every entitlement key an existing license
carries, so each one is a code of its policy's catalog.
"""

import django.core.validators
import django.db.models.deletion
import licenses.models
import uuid
from django.db import migrations, models


def _without_forced_rls(schema_editor, work):
    """Run `work` with the licenses table's RLS not forced on its owner (the
    migrating role is the owner, and no tenant is in scope here), forced
    again before the migration's transaction commits."""
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute("ALTER TABLE licenses NO FORCE ROW LEVEL SECURITY")
    try:
        work()
    finally:
        if postgres:
            # The foreign keys' deferred checks first: PostgreSQL alters no
            # table with pending trigger events.
            schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            schema_editor.execute("ALTER TABLE licenses FORCE ROW LEVEL SECURITY")


def to_default_policy(apps, schema_editor):
    License = apps.get_model("licenses", "License")
    Policy = apps.get_model("licenses", "Policy")
    Product = apps.get_model("licenses", "Product")
    alias = schema_editor.connection.alias

    def work():
        licenses = License._base_manager.using(alias)
        catalog = {}
        for entitlements in licenses.values_list("entitlements", flat=True):
            if isinstance(entitlements, dict):
                catalog.update({str(code): str(code) for code in entitlements})
        product, _ = Product.objects.using(alias).get_or_create(
            slug="coditect", defaults={"name": "CODITECT"}
        )
        policy, _ = Policy.objects.using(alias).get_or_create(
            slug="default", defaults={"name": "Default", "product": product}
        )
        if catalog:
            policy.entitlements = {**catalog, **(policy.entitlements or {})}
            policy.save(update_fields=["entitlements"])
        licenses.filter(policy__isnull=True).update(policy=policy)

    _without_forced_rls(schema_editor, work)


def from_policies(apps, schema_editor):
    """Backwards: every override the policy stood for becomes the license's own value again."""
    License = apps.get_model("licenses", "License")
    alias = schema_editor.connection.alias

    def work():
        for license in License._base_manager.using(alias).select_related("policy"):
            policy = license.policy
            for name in ("lease_ttl", "offline_grace", "borrow_limit_hours", "max_machines"):
                if getattr(license, name) is None:
                    setattr(license, name, getattr(policy, name))
            if license.entitlements is None:
                license.entitlements = dict.fromkeys(policy.entitlements or {}, True)
            license.save()

    _without_forced_rls(schema_editor, work)


class Migration(migrations.Migration):

    dependencies = [
        ('licenses', '0009_license_claims_and_notices'),
    ]

    operations = [
        migrations.CreateModel(
            name='Policy',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=200)),
                ('slug', models.SlugField(max_length=80, unique=True)),
                ('seats', models.PositiveIntegerField(default=1, help_text='Seats of a license made without a number.', validators=[django.core.validators.MinValueValidator(1)])),
                ('lease_ttl', models.PositiveIntegerField(default=licenses.models.default_lease_ttl, help_text='Seconds a seat lives without a heartbeat.', validators=[django.core.validators.MinValueValidator(1)])),
                ('offline_grace', models.PositiveIntegerField(default=licenses.models.default_offline_grace, help_text='Seconds a license token stays valid offline.', validators=[django.core.validators.MinValueValidator(1)])),
                ('borrow_limit_hours', models.PositiveIntegerField(default=licenses.models.default_borrow_limit_hours, help_text='0: no borrowing.')),
                ('max_machines', models.PositiveIntegerField(blank=True, help_text='Empty: no machine limit.', null=True)),
                ('trial_days', models.PositiveIntegerField(blank=True, help_text='A trial: licenses made from it expire this many days after creation. Empty: no trial.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                ('expiry_grace_days', models.PositiveIntegerField(default=0, help_text='Days after expiry during which acquire still succeeds (0: none).')),
                ('maintenance_end', models.DateField(blank=True, help_text='Application releases after this day are refused by the SDK. Empty: no end.', null=True)),
                ('max_version', models.CharField(blank=True, default='', help_text='The newest application version covered (dotted numbers, e.g. 2.4). Empty: any.', max_length=40)),
                ('entitlements', models.JSONField(blank=True, default=dict, help_text='The catalog: {"code": "Name", ...}.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'policies',
                'db_table': 'license_policies',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Product',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=200)),
                ('slug', models.SlugField(max_length=80, unique=True)),
                ('description', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'db_table': 'license_products',
                'ordering': ['name'],
            },
        ),
        migrations.AlterField(
            model_name='license',
            name='borrow_limit_hours',
            field=models.PositiveIntegerField(blank=True, help_text="0: no borrowing. Empty: the policy's.", null=True),
        ),
        migrations.AlterField(
            model_name='license',
            name='entitlements',
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        migrations.AlterField(
            model_name='license',
            name='lease_ttl',
            field=models.PositiveIntegerField(blank=True, help_text="Seconds a seat lives without a heartbeat. Empty: the policy's.", null=True, validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.AlterField(
            model_name='license',
            name='max_machines',
            field=models.PositiveIntegerField(blank=True, help_text="Empty: the policy's (whose empty is no limit).", null=True),
        ),
        migrations.AlterField(
            model_name='license',
            name='offline_grace',
            field=models.PositiveIntegerField(blank=True, help_text="Seconds a license token stays valid offline. Empty: the policy's.", null=True, validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.AddField(
            model_name='license',
            name='policy',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='licenses', to='licenses.policy'),
        ),
        migrations.AddField(
            model_name='policy',
            name='product',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='policies', to='licenses.product'),
        ),
        migrations.AddConstraint(
            model_name='policy',
            constraint=models.CheckConstraint(condition=models.Q(('seats__gte', 1)), name='license_policies_seats_positive'),
        ),
        migrations.RunPython(to_default_policy, from_policies, elidable=False),
        migrations.AlterField(
            model_name='license',
            name='policy',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='licenses', to='licenses.policy'),
        ),
    ]
