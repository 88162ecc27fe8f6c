"""A lease is held by one user on one machine (DESIGN.md invariant 10):
acquire now looks up the live lease of (license, fingerprint, user), so the
index that served the (license, fingerprint) lookup gains the user.

Only an index changes: the table keeps the row-level security 0002 enabled
(tenants.rls.EnableRowLevelSecurity; tenants/tests/test_rls.py checks every
tenant-owned table). Rows already live keep working: each has carried its
user since 0002, and from now on another user's acquire on the same machine
simply does not match it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("licenses", "0002_lease"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        # The new index first, so the lookup is never left without one.
        migrations.AddIndex(
            model_name="lease",
            index=models.Index(fields=["license", "fingerprint", "user_id"], name="license_leases_holder"),
        ),
        migrations.RemoveIndex(
            model_name="lease",
            name="license_leases_fingerprint",
        ),
    ]
