"""Every `manage.py` command line of the README's shell blocks, as written, in
a fresh environment: a new line in the README is tested too.

Each line must parse (the command exists, its arguments are accepted, it is
plain ASCII: a pasted "…" is an error). Then they run, in order, against a
throwaway SQLite var dir migrated first, as `make run` does: a laptop line
with exactly the environment it names (`DEBUG=1`: none is added, so a line
that forgets it fails as it would for a reader), and a line of the
production sections with no variables of its own in the server's
environment, which the embedded settings stand in for. Lines that begin
with production variables (a database on the host `db`) are only parsed."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = {"python", "python3", ".venv/bin/python"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")

pytestmark = pytest.mark.embedded


def readme_command_lines() -> list[str]:
    """The lines of ```sh blocks that run manage.py, continuations joined."""
    lines, block, pending = [], False, ""
    for raw in (ROOT / "README.md").read_text().splitlines():
        if raw.startswith("```"):
            block = raw.strip() in {"```sh", "```bash", "```shell"} if not block else False
            continue
        if not block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if "manage.py" in line and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


def _split(line: str) -> tuple[dict[str, str], str, list[str], str | None]:
    """(environment prefix, python, manage.py arguments, stdout redirect)."""
    words = shlex.split(line, comments=True)
    env = {}
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    redirect = None
    if ">" in words:
        at = words.index(">")
        redirect, words = words[at + 1], words[:at]
    assert len(words) >= 2 and words[1] == "manage.py", f"not a manage.py line: {line!r}"
    return env, words[0], words[2:], redirect


def test_the_readme_shows_its_commands():
    lines = readme_command_lines()
    commands = {_split(line)[2][0] for line in lines}
    assert {
        "create_tenant",
        "create_license",
        "create_operator",
        "setup_database_roles",
        "migrate",
    } <= commands


@pytest.mark.parametrize("line", readme_command_lines())
def test_each_readme_command_line_is_plain_and_parses(line):
    assert line.isascii(), f"non-ASCII characters in a command line: {line!r}"
    env, python, args, _ = _split(line)
    assert python in PYTHONS
    # The parser the command itself builds, in a process of its own (with the line's variables).
    code = (
        "import sys, django; django.setup(); "
        "from django.core.management import get_commands, load_command_class; "
        "name, args = sys.argv[1], sys.argv[2:]; "
        "command = load_command_class(get_commands()[name], name); "
        "command.create_parser('manage.py', name).parse_args(args)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**_fresh_environment(ROOT / "var" / "readme-parse"), "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{line}\n{result.stderr}"


def _fresh_environment(var_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "CODITECT_VAR_DIR": str(var_dir),
        "CODITECT_ENV_FILE": str(var_dir / "no.env"),
        # create_operator would prompt in a terminal; a script hands the password so.
        "OPERATOR_PASSWORD": "a readme operator passphrase",
    }


def test_the_readme_commands_run_as_written_on_a_fresh_embedded_install(tmp_path):
    env = _fresh_environment(tmp_path / "var")

    def run(args: list[str], variables: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=tmp_path,
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run(["migrate", "--no-input", "-v0"], {"DEBUG": "1"}).returncode == 0  # what `make run` does first
    ran = []
    for line in readme_command_lines():
        prefix, _, args, redirect = _split(line)
        if set(prefix) - {"DEBUG"}:
            continue  # a production line (a database on the host `db`): parsed above
        # A laptop line runs with what it names; a production one in the server's environment.
        result = run(args, prefix or {"DEBUG": "1"})
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, line
        if redirect:
            (tmp_path / redirect).write_text(result.stdout)
        ran.append(args[0])
    assert {"create_tenant", "create_license", "create_operator", "license_trust_anchors"} <= set(ran)
