"""Every `manage.py` command line of the README's shell blocks, as written, in
a fresh environment: a new line in the README is tested too.

Each line must parse (the command exists, its arguments are accepted, it is
plain ASCII: a pasted "…" is an error). Then they run, in order, against a
throwaway SQLite var dir migrated first, as `make run` does.

Where a line stands says how it runs. A line under a production heading
(PRODUCTION_SECTIONS: "The first operator", "Production configuration" and
its subsections) runs, when it names no variables of its own, in the
server's environment, which the embedded settings (`DEBUG=1`) stand in for;
one that begins with production variables (a database on the host `db`) is
only parsed. Every other line is a laptop line and runs with exactly the
environment it names and nothing else: no `DEBUG` is added, none leaks in
from the test's own environment (the suite runs with DEBUG and SECRET_KEY
set) and no `.env` of the checkout is read, so a laptop line that forgets
`DEBUG=1` fails as it would for a reader (the production checks ask for
SECRET_KEY). Before, a line without variables counted as a production line
wherever it stood and got `DEBUG=1`: a laptop line that lost it still passed
(`test_a_laptop_line_without_debug_fails` holds that)."""

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
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
# The README's sections about a production install, and everything under them.
PRODUCTION_SECTIONS = frozenset({"The first operator", "Production configuration"})
# What the production sections' lines without variables run in, for the server's environment.
SERVER_ENVIRONMENT = {"DEBUG": "1"}

pytestmark = pytest.mark.embedded


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def readme_commands(text: str) -> list[tuple[str, bool]]:
    """(line, under a production heading) for each line of ```sh blocks that
    runs manage.py, continuations joined."""
    found, fenced, block, pending, headings = [], False, False, "", []
    for raw in text.splitlines():
        if raw.startswith("```"):
            fenced = not fenced
            block = fenced and raw.strip() in {"```sh", "```bash", "```shell"}
            continue
        if not fenced:
            heading = HEADING.match(raw)
            if heading:
                level = len(heading.group(1))
                headings = [(lvl, title) for lvl, title in headings if lvl < level] + [
                    (level, heading.group(2))
                ]
            continue
        if not block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if "manage.py" in line and not line.lstrip().startswith("#"):
            found.append((line, any(title in PRODUCTION_SECTIONS for _, title in headings)))
    return found


def readme_command_lines() -> list[str]:
    return [line for line, _ in readme_commands(_readme())]


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


def test_the_readme_has_its_production_sections_and_laptop_lines():
    headings = {match.group(2) for match in map(HEADING.match, _readme().splitlines()) if match}
    assert PRODUCTION_SECTIONS <= headings
    where = {_split(line)[2][0]: production for line, production in readme_commands(_readme())}
    assert where["create_operator"] and where["setup_database_roles"] and where["migrate"]
    assert not where["create_license"] and not where["create_tenant"] and not where["license_trust_anchors"]


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


def run_readme_commands(text: str, workdir: Path) -> list[str]:
    """Run the manage.py lines of `text` (a README) in order on a fresh
    embedded install under `workdir`, as the module's docstring says; the
    commands that ran. AssertionError at the first line that fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = _fresh_environment(workdir / "var")

    def run(args: list[str], variables: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=workdir,
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run(["migrate", "--no-input", "-v0"], {"DEBUG": "1"}).returncode == 0  # what `make run` does first
    ran = []
    for line, production in readme_commands(text):
        prefix, _, args, redirect = _split(line)
        if production:
            if set(prefix) - {"DEBUG"}:
                continue  # a database on the host `db`: parsed above
            variables = prefix or SERVER_ENVIRONMENT
        else:
            variables = prefix  # a laptop line: what it names, and nothing else
        result = run(args, variables)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, line
        if redirect:
            (workdir / redirect).write_text(result.stdout)
        ran.append(args[0])
    return ran


def test_the_readme_commands_run_as_written_on_a_fresh_embedded_install(tmp_path):
    ran = run_readme_commands(_readme(), tmp_path)
    assert {"create_tenant", "create_license", "create_operator", "license_trust_anchors"} <= set(ran)


def test_a_laptop_line_without_debug_fails(tmp_path, monkeypatch):
    """The README's operator commands with `DEBUG=1` dropped from create_license
    (README.md itself untouched), while the test's own environment has DEBUG
    and SECRET_KEY: the runner must fail on that line, as the reader would."""
    monkeypatch.setenv("DEBUG", "1")
    monkeypatch.setenv("SECRET_KEY", "leaked-from-the-test-environment")
    dot_env = tmp_path / "leaked.env"
    dot_env.write_text("DEBUG=1\nSECRET_KEY=from-a-dot-env\n")
    monkeypatch.setenv("CODITECT_ENV_FILE", str(dot_env))
    # Nor is a `.env` of the checkout read: the runner names a file that is not there.
    assert not Path(_fresh_environment(tmp_path / "var")["CODITECT_ENV_FILE"]).exists()
    blocks = re.findall(r"^```sh\n.*?^```$", _readme(), re.M | re.S)
    laptop = "DEBUG=1 .venv/bin/python manage.py create_license"
    block = next(block for block in blocks if laptop in block)
    snippet = "## The API in a few lines\n\n" + block.replace(
        laptop, ".venv/bin/python manage.py create_license"
    )

    with pytest.raises(AssertionError) as failed:
        run_readme_commands(snippet, tmp_path)
    assert str(failed.value).startswith(".venv/bin/python manage.py create_license")
    assert "Set SECRET_KEY" in str(failed.value)

    # The same lines with DEBUG=1, as the README has them, run.
    ran = run_readme_commands("## The API in a few lines\n\n" + block, tmp_path / "as-written")
    assert "create_license" in ran
