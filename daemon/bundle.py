"""Read what a producer dropped (a JSON/YAML file, a bundle folder, a .tar.gz) safely.

Nothing here extracts to disk: members are read into memory under the configured limits, so
a hostile bundle cannot write outside the inbox, fill the disk, or make us read past the size
limit (the gzip stream is counted as it decompresses). Links are rejected outright: a bundle
has no reason to contain one.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from unlearnd.config import LimitSettings
from unlearnd.daemon.schema import RequestError

REQUEST_NAMES = ("request.json", "request.yaml", "request.yml")
FILE_SUFFIXES = (".json", ".yaml", ".yml")
TAR_SUFFIXES = (".tar.gz", ".tgz")


@dataclass
class Contents:
    """A dropped item as (request document name, request bytes, other files by bundle path)."""

    request_name: str
    request_bytes: bytes
    files: dict[str, bytes] = field(default_factory=dict)
    is_bundle: bool = False


class _TooLarge(Exception):
    pass


class _CountingReader:
    """A file-like wrapper that refuses to yield more than `limit` bytes (decompression bomb)."""

    def __init__(self, raw, limit: int):
        self.raw = raw
        self.limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else self.limit + 1 - self.count)
        self.count += len(data)
        if self.count > self.limit:
            raise _TooLarge()
        return data


def safe_member_path(name: str) -> str:
    """A bundle-relative POSIX path, or RequestError if it could point outside the bundle."""
    if not name or "\x00" in name or "\\" in name:
        raise RequestError.one("bundle", f"bad member name {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise RequestError.one("bundle", f"absolute path not allowed: {name!r}")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise RequestError.one("bundle", f"path leaves the bundle: {name!r}")
    if not parts:
        raise RequestError.one("bundle", f"bad member name {name!r}")
    return "/".join(parts)


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RequestError.one(what, f"larger than the limit of {limit} bytes")
    return data


def read_item(path: Path, limits: LimitSettings) -> Contents:
    """Read a dropped item by its kind; RequestError says why it cannot be a request."""
    st = os.lstat(path)
    name = path.name
    if stat.S_ISLNK(st.st_mode):
        raise RequestError.one("", "symbolic links are not accepted in the inbox")
    if stat.S_ISDIR(st.st_mode):
        return _read_folder(path, limits)
    if not stat.S_ISREG(st.st_mode):
        raise RequestError.one("", "not a regular file or folder")
    lower = name.lower()
    if lower.endswith(TAR_SUFFIXES):
        return _read_tar(path, limits)
    if lower.endswith(FILE_SUFFIXES):
        return Contents(name, _read_limited(path, limits.max_request_bytes, "request"))
    raise RequestError.one(
        "", "unsupported file type: expected .json, .yaml, .yml, .tar.gz, .tgz or a folder"
    )


def _add_member(out: Contents, rel: str, data: bytes, limits: LimitSettings, total: int) -> int:
    if rel in out.files:
        raise RequestError.one("bundle", f"duplicate member {rel!r}")
    out.files[rel] = data
    total += len(data)
    if total > limits.max_bundle_bytes:
        raise RequestError.one(
            "bundle", f"larger than the limit of {limits.max_bundle_bytes} bytes"
        )
    if len(out.files) > limits.max_bundle_members:
        raise RequestError.one("bundle", f"more than {limits.max_bundle_members} members")
    return total


def _member_limit(rel: str, limits: LimitSettings) -> int:
    return (
        limits.max_request_bytes
        if rel.lower().endswith(FILE_SUFFIXES + (".jsonl",))
        else (limits.max_image_bytes)
    )


def _read_folder(root: Path, limits: LimitSettings) -> Contents:
    out = Contents("", b"", is_bundle=True)
    total = 0
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for entry in sorted(dirnames + filenames):
            full = Path(dirpath) / entry
            rel = full.relative_to(root).as_posix()
            count += 1
            if count > limits.max_bundle_members:
                raise RequestError.one("bundle", f"more than {limits.max_bundle_members} members")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                raise RequestError.one("bundle", f"links are not allowed: {rel!r}")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise RequestError.one("bundle", f"not a regular file: {rel!r}")
            limit = _member_limit(rel, limits)
            if st.st_size > limit:
                raise RequestError.one(rel, f"larger than the limit of {limit} bytes")
            total = _add_member(out, rel, _read_limited(full, limit, rel), limits, total)
    return _pick_request(out)


def _read_tar(path: Path, limits: LimitSettings) -> Contents:
    if os.path.getsize(path) > limits.max_bundle_bytes:
        raise RequestError.one(
            "bundle", f"larger than the limit of {limits.max_bundle_bytes} bytes"
        )
    out = Contents("", b"", is_bundle=True)
    total = 0
    members = 0
    # Headers and padding count too, hence the slack over the payload limit.
    budget = limits.max_bundle_bytes + 512 * (2 * limits.max_bundle_members + 4)
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as gz:
            stream = _CountingReader(gz, budget)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    members += 1
                    if members > limits.max_bundle_members:
                        raise RequestError.one(
                            "bundle", f"more than {limits.max_bundle_members} members"
                        )
                    rel = safe_member_path(member.name)
                    if member.issym() or member.islnk():
                        raise RequestError.one("bundle", f"links are not allowed: {rel!r}")
                    if member.isdir():
                        continue
                    if not member.isreg():
                        raise RequestError.one("bundle", f"not a regular file: {rel!r}")
                    limit = _member_limit(rel, limits)
                    if member.size > limit:
                        raise RequestError.one(rel, f"larger than the limit of {limit} bytes")
                    f = tar.extractfile(member)
                    data = f.read() if f is not None else b""
                    total = _add_member(out, rel, data, limits, total)
    except _TooLarge:
        raise RequestError.one(
            "bundle", f"decompresses past the limit of {limits.max_bundle_bytes} bytes"
        ) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
        raise RequestError.one("bundle", f"not a readable .tar.gz: {e}") from None
    return _pick_request(out)


def _pick_request(out: Contents) -> Contents:
    """Find request.json|yaml at the root, or under one top folder (`tar czf b.tgz b/`)."""
    names = [n for n in REQUEST_NAMES if n in out.files]
    if not names:
        tops = {rel.split("/", 1)[0] for rel in out.files}
        if len(tops) == 1 and all("/" in rel for rel in out.files):
            (top,) = tops
            out.files = {rel.split("/", 1)[1]: data for rel, data in out.files.items()}
            names = [n for n in REQUEST_NAMES if n in out.files]
            if names:
                out.request_name = f"{top}/{names[0]}"
    if not names:
        raise RequestError.one("bundle", "no request.json or request.yaml at the bundle root")
    if len(names) > 1:
        raise RequestError.one("bundle", f"more than one request document: {', '.join(names)}")
    out.request_name = out.request_name or names[0]
    out.request_bytes = out.files.pop(names[0])
    return out
