"""`make run` installs only what the server needs to run; `make test`
installs the test tools, the deploy checkers and the browser too. Read from
`make -n` (what make would run) in a copy of a fresh clone: nothing is
installed here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the Makefile reads to name its stamps; a fresh clone has no .venv.
CLONE_FILES = [
    "Makefile",
    "requirements.txt",
    "requirements-dev.txt",
    "sdk/pyproject.toml",
    "deploy/requirements-tools.txt",
    "deploy/install-promtool",
]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(tmp_path: Path, target: str) -> str:
    clone = tmp_path / "clone"
    for name in CLONE_FILES:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    # A machine without Chromium, so that the plan shows whether it would be installed.
    result = subprocess.run(
        ["make", "-n", "-C", str(clone), target, f"CHROMIUM={tmp_path / 'no-chromium'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_the_runtime_requirements_alone(tmp_path):
    plan = planned(tmp_path, "run")
    assert "pip install -q -r requirements.txt" in plan
    for not_for_running in (
        "requirements-dev.txt",
        "-e sdk",
        "requirements-tools.txt",
        "apt-get",
        "chromium",
    ):
        assert not_for_running not in plan, plan
    assert "bin/run-embedded" in plan


def test_make_test_installs_everything_the_suite_needs_on_a_fresh_clone(tmp_path):
    plan = planned(tmp_path, "test")
    for needed in (
        "pip install -q -r requirements.txt",
        "pip install -q -r requirements-dev.txt",
        "pip install -q -e sdk",
        "pip install -q -r deploy/requirements-tools.txt",
        "deploy/install-promtool",
        "apt-get install -y -qq chromium",
        "ruff check",
        ".venv/bin/pytest",
    ):
        assert needed in plan, plan
    # The runtime comes first, then the test tools on top of it.
    assert (
        plan.index("-r requirements.txt")
        < plan.index("-r requirements-dev.txt")
        < plan.index(".venv/bin/pytest")
    )
