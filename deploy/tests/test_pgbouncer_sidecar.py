"""The PgBouncer sidecar (deploy/k8s/components/pgbouncer), turned on in a copy
of the prod overlay the way docs/operations.md ("PgBouncer") says: it renders,
validates against the Kubernetes 1.28 schemas, passes checkov, and wires the
web container to 127.0.0.1:6432 and PgBouncer to the files it reads."""

from __future__ import annotations

import json
import re
import shutil

import jsonschema
import pytest
import yaml

from deploy.tests.test_manifests import CRD_SCHEMAS
from deploy.tests.tools import DEPLOY, K8S, KUBERNETES_VERSION, one, run, tool

COMPONENT = K8S / "components" / "pgbouncer"
INI = COMPONENT / "pgbouncer.ini"
SECRETS_DIR = "/var/run/secrets/coditect/"
# What an overlay adds to its secretproviderclass.yaml, step 3 of the component's recipe.
SIDECAR_SECRETS = {
    "coditect-pgbouncer-databases": "pgbouncer-databases.ini",
    "coditect-pgbouncer-userlist": "pgbouncer-userlist.txt",
    "coditect-database-url-pgbouncer": "database-url-pgbouncer",
    "coditect-database-operator-url-pgbouncer": "database-operator-url-pgbouncer",
}


@pytest.fixture(scope="module")
def turned_on(tmp_path_factory):
    """deploy/k8s copied, with the prod overlay opted in; its web tier and migration rendered."""
    root = tmp_path_factory.mktemp("pgbouncer") / "k8s"
    shutil.copytree(K8S, root)
    overlay = root / "overlays" / "prod"

    path = overlay / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    kustomization["components"].append("../../components/pgbouncer")
    kustomization.setdefault("images", []).append(
        {
            "name": "coditect-pgbouncer",
            "newName": "europe-west1-docker.pkg.dev/coditect-prod/coditect/pgbouncer",
            "digest": "sha256:" + "1" * 64,
        }
    )
    path.write_text(yaml.safe_dump(kustomization))

    path = overlay / "secretproviderclass.yaml"
    provider = yaml.safe_load(path.read_text())
    provider["spec"]["parameters"]["secrets"] += "".join(
        f'- resourceName: "projects/coditect-prod/secrets/{name}/versions/latest"\n  path: "{file}"\n'
        for name, file in SIDECAR_SECRETS.items()
    )
    path.write_text(yaml.safe_dump(provider))

    def render(directory) -> str:
        return run(tool("kubectl"), "kustomize", str(directory)).stdout

    return {"web": render(overlay), "migrate": render(overlay / "migrate")}


def _docs(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_opted_in_overlay_validates_against_the_kubernetes_1_28_schemas(turned_on, tmp_path):
    builtin = [d for d in _docs(turned_on["web"]) if (d["apiVersion"], d["kind"]) not in CRD_SCHEMAS]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    result = run(
        tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(manifest), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(builtin)
    for doc in _docs(turned_on["web"]):
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])


def test_the_web_container_talks_to_the_sidecar_and_the_sidecar_to_what_it_is_given(turned_on):
    docs = _docs(turned_on["web"])
    pod = one(docs, "Deployment", "coditect-web")["spec"]["template"]["spec"]
    web, sidecar = pod["containers"]
    assert (web["name"], sidecar["name"]) == ("web", "pgbouncer")

    env = {e["name"]: e.get("value") for e in web["env"]}
    assert env["DATABASE_POOLER"] == "pgbouncer"
    assert env["DATABASE_SSLMODE"] == "disable"  # loopback; PgBouncer verifies Cloud SQL's CA
    assert env["DATABASE_URL_FILE"] == SECRETS_DIR + "database-url-pgbouncer"
    assert env["DATABASE_OPERATOR_URL_FILE"] == SECRETS_DIR + "database-operator-url-pgbouncer"

    # The ini in the ConfigMap is the one the tests start Debian's pgbouncer with.
    [config_map] = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("coditect-pgbouncer-")
    ]
    ini = config_map["data"]["pgbouncer.ini"]
    assert ini == INI.read_text()
    [volume] = [v for v in pod["volumes"] if v["name"] == "pgbouncer-config"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    [mount] = [m for m in sidecar["volumeMounts"] if m["name"] == "pgbouncer-config"]
    assert sidecar["args"] == [f"{mount['mountPath']}/pgbouncer.ini"]
    assert "@sha256:" in sidecar["image"]

    assert re.search(r"^listen_addr = 127\.0\.0\.1$", ini, flags=re.MULTILINE)
    assert re.search(r"^listen_port = 6432$", ini, flags=re.MULTILINE)
    assert re.search(r"^pool_mode = transaction$", ini, flags=re.MULTILINE)
    assert re.search(r"^server_tls_sslmode = verify-ca$", ini, flags=re.MULTILINE)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "/dev/tcp/127.0.0.1/6432" in " ".join(sidecar[probe]["exec"]["command"]), probe

    # Every Secret Manager file either container reads is mounted, in both containers.
    read = set(re.findall(rf"{SECRETS_DIR}([\w.-]+)", ini))
    read |= {v.removeprefix(SECRETS_DIR) for v in env.values() if v and v.startswith(SECRETS_DIR)}
    assert {"pgbouncer-databases.ini", "pgbouncer-userlist.txt", "cloudsql-server-ca.pem"} <= read
    provider = one(docs, "SecretProviderClass")
    mounted = set(re.findall(r'path: "([^"]+)"', provider["spec"]["parameters"]["secrets"]))
    assert read <= mounted, read - mounted
    [csi] = [v for v in pod["volumes"] if "csi" in v]
    for container in (web, sidecar):
        assert any(
            m["name"] == csi["name"] and m["mountPath"] + "/" == SECRETS_DIR
            for m in container["volumeMounts"]
        )

    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    # It stops after the web container's drain, inside the pod's grace period.
    assert int(sidecar["lifecycle"]["preStop"]["exec"]["command"][1]) < pod["terminationGracePeriodSeconds"]


def test_the_migration_still_connects_directly(turned_on):
    docs = _docs(turned_on["migrate"])
    (container,) = one(docs, "Job", "coditect-migrate")["spec"]["template"]["spec"]["containers"]
    assert "pgbouncer" not in json.dumps(container)
    assert one(docs, "ConfigMap")["data"]["DATABASE_SSLMODE"] == "verify-ca"


def test_checkov_finds_nothing_unexplained_in_the_opted_in_overlay(turned_on, tmp_path):
    (tmp_path / "rendered.yaml").write_text(turned_on["web"])
    result = run(
        tool("checkov"),
        "--directory",
        str(tmp_path),
        "--framework",
        "kubernetes",
        "--skip-download",
        "--quiet",
        "--output",
        "json",
        check=False,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    reports = json.loads(result.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f for r in reports for f in r.get("results", {}).get("failed_checks", [])]
    assert not failed, "\n".join(f"{f['check_id']} {f['check_name']} {f['resource']}" for f in failed)
    assert sum(r.get("summary", {}).get("passed", 0) for r in reports), "checkov checked nothing"


def test_hadolint_passes_on_the_pgbouncer_dockerfile():
    dockerfile = DEPLOY / "pgbouncer" / "Dockerfile"
    run(tool("hadolint"), "--failure-threshold", "info", str(dockerfile))
    # The image runs the version the tests run.
    assert "pgbouncer=1.18.0-1+deb12u1" in dockerfile.read_text()
