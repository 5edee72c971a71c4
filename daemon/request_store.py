"""Accepted requests on disk: <workdir>/requests/<request_id>/{request.json, images...}.

The registry holds the request's spec; the images are kept here, beside the work dir, so a
worker (or a re-run after a crash) reads exactly the bytes that were validated. Written to a
hidden temp folder and renamed, so a folder that exists is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PIL import Image

from unlearnd.config import Settings
from unlearnd.daemon.schema import RequestV1, Sample
from unlearnd.daemon.validate import Accepted

DOCUMENT = "request.json"


def requests_root(settings: Settings) -> Path:
    return settings.workdir / "requests"


def save_request(accepted: Accepted, root: Path) -> Path:
    """Write the request folder once; an existing complete folder is left as it is."""
    final = root / accepted.request_id
    if (final / DOCUMENT).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{accepted.request_id}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for rel, data in accepted.images.items():
        path = tmp / rel  # rel was checked by safe_member_path: no '..', not absolute
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    doc = {"content_sha256": accepted.content_sha256, "request": accepted.document}
    (tmp / DOCUMENT).write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    if final.exists():  # an incomplete folder from a crash before the rename
        shutil.rmtree(final)
    os.rename(tmp, final)
    return final


def load_request(root: Path, request_id: str) -> tuple[RequestV1, Path]:
    """The validated request as it was accepted, and its folder (images are relative to it)."""
    folder = root / request_id
    doc = json.loads((folder / DOCUMENT).read_text())
    return RequestV1.model_validate(doc["request"]), folder


def write_resubmission(root: Path, request_id: str, dest: Path) -> Path:
    """A bundle folder `dest` that submits request `request_id` again as it was accepted (its
    samples, params and gate), linked to it by `supersedes`; a new id is derived from it."""
    folder = root / request_id
    if not (folder / DOCUMENT).is_file():
        raise FileNotFoundError(f"no stored request {request_id!r} under {root}")
    doc = json.loads((folder / DOCUMENT).read_text())["request"]
    doc.pop("id", None)  # the old id is taken: the new request gets one from its content
    doc["supersedes"] = request_id
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns(DOCUMENT))
    (dest / DOCUMENT).write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return dest


def open_image(folder: Path, sample: Sample) -> Image.Image | None:
    if sample.image is None:
        return None
    with Image.open(folder / sample.image) as im:
        return im.convert("RGB")
