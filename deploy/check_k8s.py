"""Strict structural check of the Kubernetes manifests against the official Python client's
models (the API's OpenAPI types): every field must exist on its type, every value must have
the type's shape, and required fields must be present. Like `kubeconform -strict`, offline.

    python deploy/check_k8s.py deploy/k8s/*.yaml     (needs `pip install kubernetes pyyaml`)
"""

from __future__ import annotations

import re
import sys

import yaml
from kubernetes import client
from kubernetes.client import models

SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str}
SKIP_KINDS = {"Kustomization"}  # kustomize's own file: not an API object


def model_name(doc: dict) -> str:
    version = doc["apiVersion"].split("/")[-1]
    return f"{version.capitalize()}{doc['kind']}"


def check(value, type_name: str, path: str, errors: list[str]) -> None:
    if type_name == "object":  # IntOrString and free-form fields
        return
    if m := re.fullmatch(r"(?:list|List)\[(.+)\]", type_name):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]", errors)
        return
    if m := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping")
            return
        for key, item in value.items():
            check(item, m.group(1) or m.group(2), f"{path}.{key}", errors)
        return
    if type_name in SCALARS:
        if not isinstance(value, SCALARS[type_name]) or isinstance(value, bool) != (
            type_name == "bool"
        ):
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__}")
        return
    cls = getattr(models, type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} mapping")
        return
    by_json = {json: attr for attr, json in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        check(item, cls.openapi_types[by_json[key]], f"{path}.{key}", errors)


def required(doc: dict, name: str, where: str, errors: list[str]) -> None:
    """The client's models refuse a missing required field when built: build one."""
    api = client.ApiClient()
    try:
        api._ApiClient__deserialize(doc, name)  # noqa: SLF001 - the client's own deserialiser
    except (ValueError, TypeError) as e:
        errors.append(f"{where}: {e}")


def main(paths: list[str]) -> int:
    errors: list[str] = []
    count = 0
    for path in paths:
        with open(path) as f:
            for n, doc in enumerate(yaml.safe_load_all(f)):
                if not doc or doc.get("kind") in SKIP_KINDS:
                    continue
                where = f"{path}#{n} {doc.get('kind')}"
                name = model_name(doc)
                if not hasattr(models, name):
                    errors.append(f"{where}: unknown kind/apiVersion ({name})")
                    continue
                check(doc, name, where, errors)
                required(doc, name, where, errors)
                count += 1
    for e in errors:
        print(e)
    print(f"{count} objects checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
