"""Content-addressed blobs: `<root>/<sha[:2]>/<sha>`, named by the sha256 of their bytes.

Writes go to a temp file, are fsynced, then renamed into place (a crash leaves either the
whole blob or a stray temp file, never a partial blob). Every load hashes the bytes first and
deserialises only those verified bytes; a mismatch raises ArtifactCorrupt and calls
`on_corrupt` (the SQL store marks the versions that reference the blob broken).
Tensors are safetensors only; nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from unlearnd.registry.errors import ArtifactCorrupt, NotFound

if TYPE_CHECKING:  # torch is imported when tensors are used: the CLI starts fast without it
    import torch

SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_safetensors(data: bytes) -> bytes:
    """The same tensors and metadata always give the same bytes (so one blob).

    safetensors writes the metadata map in hash-map order, which changes between processes;
    we rewrite the JSON header with sorted keys. Data offsets are relative to the end of the
    header, so the tensor bytes stay as they are.
    """
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as safetensors does
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


class ArtifactStore:
    def __init__(self, root: str | Path, on_corrupt: Callable[[str, str], None] | None = None):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.on_corrupt = on_corrupt

    # -- writing ----------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        sha = sha256_bytes(data)
        final = self._path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = self.tmp / f"{sha[:16]}.{uuid.uuid4().hex}.part"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # Replacing an existing blob of the same name is harmless (same bytes), repairs a
        # damaged one, and refreshes its mtime, which protects it from GC's grace period.
        os.replace(temp, final)
        _fsync_dir(final.parent)
        return sha

    def put_file(self, path: str | Path) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def put_tensors(
        self, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
    ) -> str:
        import torch
        from safetensors.torch import save as save_safetensors

        if not tensors:
            raise ValueError("put_tensors: no tensors given")
        for name, value in tensors.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"put_tensors: {name!r} is {type(value).__name__}, not a Tensor")
        clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        return self.put_bytes(canonical_safetensors(save_safetensors(clean, metadata=meta)))

    # -- reading ----------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        return bool(SHA_RE.match(sha256)) and self._path(sha256).is_file()

    def read_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, verified against its name."""
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} is not in the store ({path})") from None
        actual = sha256_bytes(data)
        if actual != sha256:
            self._corrupt(sha256, actual, path)
        return data

    def load_tensors(self, sha256: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load as load_safetensors

        return load_safetensors(self.read_bytes(sha256))

    def load_metadata(self, sha256: str) -> dict[str, str]:
        data = self.read_bytes(sha256)
        (n,) = struct.unpack("<Q", data[:8])
        return json.loads(data[8 : 8 + n]).get("__metadata__", {})

    def path(self, sha256: str) -> Path:
        """The blob's path after checking its hash (for readers that need a file name)."""
        self.read_bytes(sha256)
        return self._path(sha256)

    # -- housekeeping -----------------------------------------------------------------------

    def blobs(self) -> Iterator[tuple[str, Path]]:
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for path in sub.iterdir():
                    if SHA_RE.match(path.name):
                        yield path.name, path

    def remove_unreferenced(
        self, referenced: set[str], min_age_s: float, dry_run: bool = False
    ) -> list[str]:
        """Delete blobs not in `referenced` and older than `min_age_s` (a running job may have
        written a blob it has not committed yet; the grace period keeps it). Stale temp files
        go too."""
        cutoff = time.time() - min_age_s
        removed = []
        for sha, path in self.blobs():
            if sha not in referenced and _mtime(path) < cutoff:
                removed.append(sha)
                if not dry_run:
                    path.unlink(missing_ok=True)
        if not dry_run:
            for temp in self.tmp.glob("*.part"):
                if _mtime(temp) < cutoff:
                    temp.unlink(missing_ok=True)
        return removed

    def _path(self, sha256: str) -> Path:
        if not SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 (64 lowercase hex digits): {sha256!r}")
        return self.root / sha256[:2] / sha256

    def _corrupt(self, sha256: str, actual: str, path: Path) -> None:
        error = ArtifactCorrupt(sha256, actual, str(path))
        if self.on_corrupt is not None:
            self.on_corrupt(sha256, str(error))
        raise error


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
