"""The deploy files agree with the code: what they run exists, what they mount is what the
code writes, the config they ship is valid. (deploy/check.sh runs the schema linters.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from unlearnd.api import create_app
from unlearnd.cli.main import app as cli_app
from unlearnd.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SHARED = {"/var/lib/unlearnd/inbox", "/var/lib/unlearnd/requests", "/var/lib/unlearnd/artifacts"}


def cli_commands() -> set[str]:
    return {c.name or c.callback.__name__ for c in cli_app.registered_commands}


def test_the_image_contains_every_package_folder():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
    assert folders == copied
    assert re.search(r"^USER 10001", dockerfile, re.M)  # not root
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:.*runtime", dockerfile, re.M)


def test_compose_runs_postgres_a_worker_and_the_api_on_shared_volumes():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # resolves the << merges
    services = doc["services"]
    assert {"postgres", "worker", "api"} <= set(services)
    for name in ("worker", "worker-gpu1", "api"):
        service = services[name]
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert mounts == SHARED, name
        assert service["environment"]["UNLEARND_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["command"][0] in cli_commands()
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "UNLEARND_API__TOKEN" in services["api"]["environment"]
    assert {"inbox", "requests", "artifacts", "pgdata"} <= set(doc["volumes"])


def k8s_objects() -> dict[str, dict]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj["kind"] != "Kustomization":
                found[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return found


def test_kubernetes_manifests_fit_the_code(tmp_path):
    objs = k8s_objects()
    listed = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name
        for p in (DEPLOY / "k8s").glob("*.yaml")
        if p.name not in ("kustomization.yaml", "secret.example.yaml")
    )
    assert objs["Service/unlearnd-postgres"]["spec"]["type"] == "ExternalName"
    # The shipped config is a valid one.
    toml = tmp_path / "unlearnd.toml"
    toml.write_text(objs["ConfigMap/unlearnd-config"]["data"]["unlearnd.toml"])
    assert isinstance(load_settings(toml, environ={}), Settings)

    routes = set(create_app(Settings(workdir=tmp_path)).openapi()["paths"])
    for name in ("unlearnd-worker", "unlearnd-api"):
        pod = objs[f"Deployment/{name}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][0] in cli_commands()
        assert {m["mountPath"] for m in container["volumeMounts"]} >= SHARED
        assert pod["securityContext"]["runAsNonRoot"] is True
    worker = objs["Deployment/unlearnd-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    api = objs["Deployment/unlearnd-api"]["spec"]["template"]["spec"]["containers"][0]
    assert {api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]} <= (
        routes
    )


def test_systemd_units_run_real_commands():
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert len(units) == 2
    for unit in units:
        (exec_start,) = re.findall(r"^ExecStart=(\S+) (\w+)", unit.read_text(), re.M)
        assert exec_start[0].endswith("/unlearnd") and exec_start[1] in cli_commands()
