"""Check 2: hadolint on the Dockerfile; checkov on the rendered manifests, the
Dockerfile and (for secrets) everything under deploy/. No finding is allowed
to stand: each one is fixed, or skipped with its reason written beside it
(`checkov.io/skip*` annotations, `# checkov:skip=ID: reason` comments)."""

from __future__ import annotations

import json

from deploy.tests.tools import DEPLOY, overlays, rendered, run, tool

# A manifest checkov must object to, so that a clean report means it looked.
_CONTROL = """\
apiVersion: v1
kind: Pod
metadata:
  name: control
  namespace: default
spec:
  containers:
    - name: control
      image: busybox:latest
      securityContext:
        privileged: true
"""


def _checkov(*args: str) -> list[dict]:
    # --skip-download: checkov must not call out for its policy metadata (no network here, or in CI).
    result = run(
        tool("checkov"), *args, "--skip-download", "--quiet", "--output", "json", check=False, timeout=300
    )
    assert result.returncode in (0, 1), result.stderr
    reports = json.loads(result.stdout or "[]")
    return reports if isinstance(reports, list) else [reports]


def _findings(reports: list[dict]) -> tuple[list, list]:
    failed, skipped = [], []
    for report in reports:
        assert report.get("summary", {}).get("parsing_errors", 0) == 0, report
        results = report.get("results", {})
        failed += results.get("failed_checks", [])
        skipped += results.get("skipped_checks", [])
    return failed, skipped


def _describe(findings: list) -> str:
    return "\n".join(
        f"{f['check_id']} {f['check_name']} {f['file_path']}:{f['file_line_range']}" for f in findings
    )


def test_hadolint_passes_on_the_dockerfile():
    run(tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / "Dockerfile"))


def test_checkov_finds_nothing_unexplained_in_the_rendered_manifests(tmp_path):
    for overlay in overlays():
        name = str(overlay.relative_to(DEPLOY / "k8s" / "overlays")).replace("/", "-")
        (tmp_path / "rendered" / f"{name}.yaml").parent.mkdir(exist_ok=True)
        (tmp_path / "rendered" / f"{name}.yaml").write_text(rendered(overlay))
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "control.yaml").write_text(_CONTROL)

    failed, skipped = _findings(_checkov("--directory", str(tmp_path), "--framework", "kubernetes"))

    assert any(f["file_path"].endswith("control.yaml") for f in failed), (
        "checkov found nothing in the control"
    )
    ours = [f for f in failed if not f["file_path"].endswith("control.yaml")]
    assert not ours, _describe(ours)
    for finding in skipped:
        assert (finding.get("check_result", {}).get("suppress_comment") or "").strip(), _describe([finding])


def test_checkov_finds_nothing_unexplained_in_the_dockerfile_or_any_secret_in_deploy():
    reports = _checkov("--directory", str(DEPLOY), "--framework", "dockerfile", "secrets")
    assert any(r["check_type"] == "dockerfile" and r["summary"]["passed"] for r in reports), (
        "no Dockerfile scanned"
    )
    failed, skipped = _findings(reports)
    assert not failed, _describe(failed)
    for finding in skipped:
        assert (finding.get("check_result", {}).get("suppress_comment") or "").strip(), _describe([finding])
