"""Check 1: every overlay renders, validates against the Kubernetes 1.28 schemas
offline, and has the production shape of the seed; yamllint passes on deploy/."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from deploy.tests.tools import (
    DEPLOY,
    KUBERNETES_VERSION,
    documents,
    one,
    overlays,
    rendered,
    run,
    tool,
)

OVERLAYS = overlays()
WEB_OVERLAYS = [o for o in OVERLAYS if o.name != "migrate"]
MIGRATE_OVERLAYS = [o for o in OVERLAYS if o.name == "migrate"]

# Custom resources have no schema in Kubernetes' own set. These are the parts
# of their CRDs (GKE's Secret Manager add-on, Google Managed Prometheus) that
# the manifests use, strict: a misspelt field fails here as it would on apply.
CRD_SCHEMAS = {
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["provider", "parameters"],
                "properties": {
                    "provider": {"enum": ["gke", "gcp"]},
                    "parameters": {
                        "type": "object",
                        "required": ["secrets"],
                        "additionalProperties": {"type": "string"},
                    },
                    "secretObjects": {"type": "array"},
                },
            },
        },
    },
    ("monitoring.googleapis.com/v1", "PodMonitoring"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name", "namespace"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object"}},
                        "additionalProperties": False,
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": ["string", "integer"]},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "timeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scheme": {"enum": ["http", "https"]},
                                "authorization": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "type": {"enum": ["Bearer"]},
                                        "credentials": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "required": ["secret"],
                                            "properties": {
                                                "secret": {
                                                    "type": "object",
                                                    "additionalProperties": False,
                                                    "required": ["name", "key"],
                                                    "properties": {
                                                        "name": {"type": "string"},
                                                        "key": {"type": "string"},
                                                        "namespace": {"type": "string"},
                                                    },
                                                }
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _split_documents(overlay, tmp_path) -> tuple[list, list]:
    """Built-in kinds, written to a file for kubernetes-validate; custom resources apart."""
    builtin, custom = [], []
    for doc in documents(overlay):
        (custom if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS else builtin).append(doc)
    return builtin, custom


def test_there_is_a_dev_and_a_prod_overlay_each_with_its_migration():
    names = {str(o.relative_to(DEPLOY / "k8s" / "overlays")) for o in OVERLAYS}
    assert names == {"dev", "prod", "dev/migrate", "prod/migrate"}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: str(o.relative_to(DEPLOY / "k8s")))
def test_every_rendered_manifest_validates_against_the_kubernetes_1_28_schemas(overlay, tmp_path):
    builtin, custom = _split_documents(overlay, tmp_path)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    result = run(
        tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(manifest), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing was skipped for want of a schema: every built-in kind was checked.
    assert "Couldn't find schema" not in result.stdout + result.stderr
    assert result.stdout.count("passed for resource") == len(builtin)
    for doc in custom:
        jsonschema.validate(doc, CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])])


def test_the_validator_rejects_what_kubernetes_1_28_would(tmp_path):
    # A control: a field that does not exist must fail, so a pass above means something.
    bad = yaml.safe_load(rendered(WEB_OVERLAYS[0]).split("\n---\n")[0])
    bad["spec"] = {"notAField": True}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert run(
        tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path), check=False
    ).returncode


def test_yamllint_passes_on_everything_under_deploy():
    run(tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint"), str(DEPLOY))


@pytest.mark.parametrize("overlay", WEB_OVERLAYS, ids=lambda o: o.name)
def test_the_web_tier_has_the_seeds_production_shape(overlay):
    docs = documents(overlay)
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")

    deployment = one(docs, "Deployment", "coditect-web")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    (web,) = pod["containers"]
    assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert web["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    assert web["livenessProbe"]["periodSeconds"] == 30
    assert web["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert web["readinessProbe"]["periodSeconds"] == 10
    assert "@sha256:" in web["image"]
    assert web["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True

    account = one(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )
    # No placeholder left for the overlay to fill.
    assert not re.search(r"(?<![A-Z_])PROJECT_ID", json.dumps(docs))

    config = one(docs, "ConfigMap")
    assert web["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    settings = config["data"]
    assert settings["DEBUG"] == "0"
    assert settings["DATABASE_SSLMODE"] == "verify-ca"
    for name, value in settings.items():
        if name.endswith("_FILE") or name in {"DATABASE_SSLROOTCERT", "REDIS_SSL_CA_CERTS"}:
            assert value.startswith("/var/run/secrets/coditect/"), name
    assert not any(word in settings for word in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"))

    provider = one(docs, "SecretProviderClass")
    (volume,) = [v for v in pod["volumes"] if "csi" in v]
    assert volume["csi"]["volumeAttributes"]["secretProviderClass"] == provider["metadata"]["name"]
    mounted = {
        line.split('"')[1]
        for line in provider["spec"]["parameters"]["secrets"].splitlines()
        if "path:" in line and not line.lstrip().startswith("#")  # an optional secret, commented out
    }
    wanted = {v.rsplit("/", 1)[1] for k, v in settings.items() if v.startswith("/var/run/secrets/coditect/")}
    assert wanted <= mounted
    assert "database-owner-url" not in mounted  # the owner role is the migration's alone

    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "coditect-web"
    if overlay.name == "prod":
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1

    service = one(docs, "Service")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    ingress = one(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert settings["ALLOWED_HOSTS"] == ingress["spec"]["rules"][0]["host"]
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$remote_addr"
    )

    policy = one(docs, "NetworkPolicy", "coditect-web-ingress")
    sources = [rule["from"][0]["namespaceSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]]
    assert {"kubernetes.io/metadata.name": "ingress-nginx"} in sources
    assert one(docs, "NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}


@pytest.mark.parametrize("overlay", MIGRATE_OVERLAYS, ids=lambda o: o.parent.name)
def test_the_migration_job_runs_migrate_as_the_owner_role_with_the_web_tiers_image_and_settings(overlay):
    docs = documents(overlay)
    web = documents(overlay.parent)
    job = one(docs, "Job", "coditect-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DATABASE_URL_FILE"] == "/var/run/secrets/coditect/database-owner-url"
    # The web tier's replica URL (when its ConfigMap names one) is not mounted here.
    assert env["DATABASE_REPLICA_URL_FILE"] == ""
    provider = one(docs, "SecretProviderClass")
    assert "database-owner-url" in provider["spec"]["parameters"]["secrets"]
    (web_container,) = one(web, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == web_container["image"]
    assert one(docs, "ConfigMap") == one(web, "ConfigMap")
    assert one(docs, "Namespace") == one(web, "Namespace")
    account = one(docs, "ServiceAccount", job["spec"]["template"]["spec"]["serviceAccountName"])
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        "coditect-migrate@"
    )


def test_celery_beat_runs_exactly_one_instance_and_the_worker_the_same_image():
    services = {p.stem: yaml.safe_load(p.read_text()) for p in (DEPLOY / "cloudrun").glob("*.yaml")}
    assert set(services) == {"celery-worker", "celery-beat"}
    beat = services["celery-beat"]["spec"]["template"]
    assert beat["metadata"]["annotations"]["autoscaling.knative.dev/minScale"] == "1"
    assert beat["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == "1"
    images = set()
    for name, service in services.items():
        template = service["spec"]["template"]
        assert template["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] == "false"
        app = template["spec"]["containers"][0]
        images.add(app["image"].split("@")[0].replace("PROJECT_ID", "coditect-prod"))
        assert all(isinstance(word, str) for word in app["command"]), app["command"]
        assert app["command"][:3] == ["celery", "--app", "coditect"]
        assert app["command"][3] == name.removeprefix("celery-")
        env = {e["name"]: e for e in app["env"]}
        assert env["CELERY_METRICS_PORT"]["value"] == str(app["ports"][0]["containerPort"])
        assert env["DEBUG"]["value"] == "0"
        assert "secretKeyRef" in env["REDIS_URL"]["valueFrom"]
    (prod_web,) = one(documents(DEPLOY / "k8s" / "overlays" / "prod"), "Deployment")["spec"]["template"][
        "spec"
    ]["containers"]
    assert images == {prod_web["image"].split("@")[0]}


def _base(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "base" / name).read_text()) if doc]


def test_prometheus_scrapes_metrics_with_the_token_the_web_pods_check():
    # Read from the base files (no kustomize needed): the scrape sends the
    # bearer token from the Secret the pods take METRICS_TOKEN from.
    (endpoint,) = one(_base("podmonitoring.yaml"), "PodMonitoring")["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["type"] == "Bearer"
    scraped_with = endpoint["authorization"]["credentials"]["secret"]

    pod = one(_base("deployment.yaml"), "Deployment")["spec"]["template"]["spec"]
    (web,) = pod["containers"]
    [token_file] = [env["value"] for env in web["env"] if env["name"] == "METRICS_TOKEN_FILE"]
    [mount] = [m for m in web["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"] == scraped_with["name"]
    [item] = secret["items"]
    assert item["key"] == scraped_with["key"]
    assert token_file == f"{mount['mountPath']}/{item['path']}"
    assert "optional" not in secret  # no pod starts without it


def test_the_managed_collectors_may_read_that_one_secret_and_no_other():
    docs = _base("podmonitoring.yaml")
    role = one(docs, "Role")
    (rule,) = role["rules"]
    assert rule["resources"] == ["secrets"] and rule["resourceNames"] == ["coditect-metrics-token"]
    assert set(rule["verbs"]) <= {"get", "list", "watch"}
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "collector", "namespace": "gmp-system"}]
