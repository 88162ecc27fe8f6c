"""Settings read from the environment: the cases a misconfiguration would hurt."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(**env) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({'db': settings.DATABASES['default'], 'ledger': settings.SEAT_LEDGER}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "REDIS", "SEAT_"))}
    clean.update(DJANGO_SETTINGS_MODULE="coditect.settings", DEBUG="1", **env)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_sqlite_url_gets_the_serialised_sqlite_backend(tmp_path):
    got = settings_in_subprocess(
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", CODITECT_VAR_DIR=str(tmp_path)
    )
    assert got["db"]["ENGINE"] == "core.sqlite_backend"
    assert got["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert got["ledger"] == "database"


def test_no_settings_mean_the_embedded_default(tmp_path):
    got = settings_in_subprocess(CODITECT_VAR_DIR=str(tmp_path))
    assert got["db"]["NAME"] == str(tmp_path / "coditect.sqlite3")
    assert got["ledger"] == "database"
