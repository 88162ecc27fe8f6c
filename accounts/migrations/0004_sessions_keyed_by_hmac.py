"""Sessions are now stored by accounts.sessions (the key column holds an HMAC of
the session key). Rows of Django's own store hold cookies in the clear; they
could never be read by the new store anyway, so they go: every session made
before this migration ends (people sign in again)."""

from django.db import migrations


def delete_plain_sessions(apps, schema_editor):
    apps.get_model("sessions", "Session").objects.using(schema_editor.connection.alias).all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_login_throttles"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(delete_plain_sessions, migrations.RunPython.noop, elidable=True)]
