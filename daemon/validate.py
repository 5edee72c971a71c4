"""Turn what was read from the inbox into an accepted request, or say field by field why not.

Checks: the document parses (JSON or YAML, no YAML aliases), matches `unlearnd.request/v1`,
its JSONL sample files and images exist inside the bundle, images decode within the pixel
limit, the method and its params and the gate overrides are valid, and a domain request's
samples are labelled images of the domains its target names (it defaults to method `adu`).
The content hash covers the request and the bytes of every image it uses, so the same content
twice is one request. Whether the request fits the deployment's model (a domain request needs
a CLIP) is the worker's check: intake does not load the deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from unlearnd.config import LimitSettings, PromotionSettings, Settings
from unlearnd.daemon.bundle import Contents, read_item, safe_member_path
from unlearnd.daemon.schema import (
    FieldError,
    RequestError,
    RequestV1,
    Sample,
    parse_request,
    parse_sample,
)
from unlearnd.serving.images import verify_image

DOMAIN_METHOD = "adu"  # a domain request that names no method: the CLIP domain method
MethodCheck = Callable[[str, dict[str, Any]], None]  # raises ValueError naming the problem


@dataclass(frozen=True)
class Accepted:
    request: RequestV1  # forget / retain resolved to lists, method filled in
    request_id: str
    content_sha256: str
    images: dict[str, bytes]  # bundle path -> bytes, only the images the samples use

    @property
    def document(self) -> dict[str, Any]:
        return self.request.document()


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a few aliased lists can expand to gigabytes of JSON."""

    def compose_node(self, parent, index):  # noqa: ANN001 - yaml's own signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def load_document(name: str, data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError.one(
            "", f"{name}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None
    try:
        if name.lower().endswith(".json"):
            return json.loads(text, parse_constant=_reject_constant)
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except json.JSONDecodeError as e:
        msg = f"{name}: not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}"
        raise RequestError.one("", msg) from None
    except yaml.YAMLError as e:
        raise RequestError.one("", f"{name}: not valid YAML: {e}") from None
    except (ValueError, RecursionError) as e:
        raise RequestError.one("", f"{name}: not a valid document: {e}") from None


def _samples_from_jsonl(field: str, name: str, contents: Contents) -> list[Sample]:
    try:
        rel = safe_member_path(name)
    except RequestError as e:
        raise RequestError.one(field, e.errors[0].message) from None
    if rel not in contents.files:
        where = "in bundle" if contents.is_bundle else "(a plain request file has no bundle)"
        raise RequestError.one(field, f"file {name!r} not found {where}")
    errors: list[FieldError] = []
    samples: list[Sample] = []
    lines = contents.files[rel].decode("utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{field}[{len(samples) + len(errors)}]"
        try:
            raw = json.loads(line, parse_constant=_reject_constant)
            samples.append(parse_sample(raw, where))
        except (ValueError, RecursionError) as e:
            found = e.errors if isinstance(e, RequestError) else [FieldError(where, str(e))]
            errors += [FieldError(x.field, f"{x.message} ({name} line {lineno})") for x in found]
    if errors:
        raise RequestError(errors)
    if not samples and field == "forget":
        raise RequestError.one(field, f"{name} has no samples")
    return samples


def _check_images(
    field: str,
    samples: list[Sample],
    contents: Contents,
    limits: LimitSettings,
    images: dict[str, bytes],
    errors: list[FieldError],
) -> list[Sample]:
    out = []
    for i, sample in enumerate(samples):
        if sample.image is None:
            out.append(sample)
            continue
        where = f"{field}[{i}].image"
        try:
            rel = safe_member_path(sample.image)
        except RequestError as e:
            errors.append(FieldError(where, e.errors[0].message))
            continue
        if rel not in contents.files:
            hint = "" if contents.is_bundle else " (a plain request file has no bundle)"
            errors.append(FieldError(where, f"file not found in bundle{hint}"))
            continue
        if rel not in images:
            problem = verify_image(contents.files[rel], limits)
            if problem:
                errors.append(FieldError(where, problem))
                continue
            images[rel] = contents.files[rel]
        out.append(sample.model_copy(update={"image": rel}))
    return out


def domain_names(target_name: str) -> list[str]:
    """The domains a domain request forgets: its `target.name`, comma-separated."""
    return [n.strip() for n in target_name.split(",") if n.strip()]


def _domain_errors(target_name: str, samples: dict[str, list[Sample]]) -> list[FieldError]:
    """A domain request's samples follow ADU's convention: an image, question = its domain,
    answer = its class; forget images are of the named domains, retain images of others."""
    names = domain_names(target_name)
    errors: list[FieldError] = []
    for field in ("forget", "retain"):
        for i, s in enumerate(samples[field]):
            if s.image is None:
                errors.append(FieldError(f"{field}[{i}].image", "a domain sample needs an image"))
            if not s.answer.strip():
                errors.append(FieldError(f"{field}[{i}].answer", "must be the image's class"))
            named = s.question in names
            if field == "forget" and not named:
                msg = f"domain {s.question!r} is not one target.name forgets ({', '.join(names)})"
                errors.append(FieldError(f"forget[{i}].question", msg))
            elif field == "retain" and named:
                msg = f"domain {s.question!r} is forgotten (target.name); retain kept domains"
                errors.append(FieldError(f"retain[{i}].question", msg))
    if samples["forget"]:
        missing = [n for n in names if n not in {s.question for s in samples["forget"]}]
        if missing:
            errors.append(FieldError("target.name", f"no forget image of domain(s) {missing}"))
    return errors


def default_method_check(method: str, params: dict[str, Any]) -> None:
    from unlearnd.methods import get_method  # torch import: only when a request arrives

    try:
        get_method(method).validate_params(params)
    except KeyError as e:
        raise ValueError(str(e)) from None


def accept(
    contents: Contents,
    limits: LimitSettings,
    default_method: str,
    method_check: MethodCheck | None = default_method_check,
    method_defaults: dict[str, dict[str, Any]] | None = None,
) -> Accepted:
    """Validate everything; RequestError lists every problem found, not only the first.
    `method_defaults`: the deployment's params per method, checked with the request's."""
    req = parse_request(load_document(contents.request_name, contents.request_bytes))
    errors: list[FieldError] = []
    resolved: dict[str, list[Sample]] = {}
    for field in ("forget", "retain"):
        value = getattr(req, field)
        try:
            resolved[field] = (
                _samples_from_jsonl(field, value, contents)
                if isinstance(value, str)
                else list(value or [])
            )
        except RequestError as e:
            errors += e.errors
            resolved[field] = []
    if req.kind == "domain":  # before the image checks, which drop bad samples (indices)
        errors += _domain_errors(req.target.name, resolved)
    count = len(resolved["forget"]) + len(resolved["retain"])
    if count > limits.max_samples:
        errors.append(FieldError("forget", f"{count} samples; the limit is {limits.max_samples}"))
    images: dict[str, bytes] = {}
    for field in ("forget", "retain"):
        resolved[field] = _check_images(field, resolved[field], contents, limits, images, errors)
    method = req.method or (DOMAIN_METHOD if req.kind == "domain" else default_method)
    if method_check is not None:
        try:
            defaults = (method_defaults or {}).get(method, {})
            method_check(method, {**defaults, **req.params})
        except ValueError as e:
            errors.append(FieldError("method" if "unknown method" in str(e) else "params", str(e)))
    if req.gate:
        from unlearnd.evaluation.promotion import thresholds

        try:
            thresholds(PromotionSettings(), dict(req.gate))
        except ValueError as e:
            errors.append(FieldError("gate", str(e)))
    if errors:
        raise RequestError(errors)
    retain = resolved["retain"] if req.retain is not None else None
    req = req.model_copy(update={"forget": resolved["forget"], "retain": retain, "method": method})
    digest = content_sha256(req, images)
    return Accepted(req, req.id or f"req-{digest[:16]}", digest, images)


def accept_item(path: Path, settings: Settings) -> Accepted:
    """A request file, folder or .tar.gz checked as the intake checks it, before it is sent
    (`unlearnd submit`, `POST /requests`): what needs the model folder is the intake's."""
    return accept(read_item(path, settings.limits), settings.limits,
                  settings.daemon.default_method, method_defaults=settings.methods)  # fmt: skip


def content_sha256(req: RequestV1, images: dict[str, bytes]) -> str:
    """sha256 over the canonical request and the bytes of each image it uses."""
    canonical = {
        "request": req.document(),
        "images": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(images.items())},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
