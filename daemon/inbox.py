"""The inbox folders and the moves between them (Maildir's rules).

tmp/         producers write here, then rename into new/
new/         complete items waiting (or direct drops, taken once size+mtime are stable)
processing/  claimed by an intake (os.rename is atomic: two intakes never take one item)
done/        accepted (or a duplicate of an accepted request)
failed/      rejected, with <name>.error.json beside it saying field by field why
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from unlearnd.daemon.schema import FieldError

SUBDIRS = ("tmp", "new", "processing", "done", "failed")
ERROR_SUFFIX = ".error.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Signature:
    """What must not change between two looks for a direct drop to count as complete."""

    size: int
    mtime_ns: int
    entries: int  # files in a folder (1 for a file)


def signature(path: Path) -> Signature | None:
    try:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path):
            return Signature(st.st_size, st.st_mtime_ns, 1)
        size, mtime, entries = 0, st.st_mtime_ns, 0
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                sub = os.lstat(os.path.join(dirpath, name))
                size += sub.st_size
                mtime = max(mtime, sub.st_mtime_ns)
                entries += 1
        return Signature(size, mtime, entries)
    except FileNotFoundError:
        return None


class Inbox:
    def __init__(self, root: Path):
        self.root = Path(root)
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def dir(self, sub: str) -> Path:
        return self.root / sub

    def waiting(self) -> list[str]:
        """Names in new/, oldest first; hidden names are a producer's scratch files."""
        names = []
        with os.scandir(self.dir("new")) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    names.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
                except FileNotFoundError:
                    continue
        return [name for _, name in sorted(names)]

    def claim(self, name: str) -> Path | None:
        """Move new/<name> into processing/; None if another intake took it first."""
        dest = _free_name(self.dir("processing"), name)
        try:
            os.rename(self.dir("new") / name, dest)
        except FileNotFoundError:
            return None
        return dest

    def leftovers(self) -> list[Path]:
        """Items a crashed intake left in processing/ (they are taken again at start-up)."""
        return sorted(p for p in self.dir("processing").iterdir() if not p.name.startswith("."))

    def finish_done(self, claimed: Path, note: dict | None = None) -> Path:
        dest = _free_name(self.dir("done"), claimed.name)
        if note is not None:
            _write_json(dest.with_name(dest.name + ".intake.json"), note)
        os.rename(claimed, dest)
        return dest

    def finish_failed(self, claimed: Path, errors: list[FieldError], original: str) -> Path:
        """Move to failed/ with the reason file written first, so a reject is never silent."""
        dest = _free_name(self.dir("failed"), claimed.name)
        report = {
            "file": original,
            "rejected_at": now_iso(),
            "errors": [{"field": e.field, "message": e.message} for e in errors],
        }
        _write_json(dest.with_name(dest.name + ERROR_SUFFIX), report)
        os.rename(claimed, dest)
        return dest

    def give_back(self, claimed: Path) -> None:
        """Return a claimed item to new/ (our own failure, not the input's: try again later)."""
        os.rename(claimed, _free_name(self.dir("new"), claimed.name))


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/stem.N.suffix when taken (a producer may reuse a name)."""
    dest = folder / name
    stem, suffix = _split_suffix(name)
    n = 0
    while dest.exists() or dest.is_symlink() or Path(str(dest) + ERROR_SUFFIX).exists():
        n += 1
        dest = folder / f"{stem}.{n}{suffix}"
    return dest


def _split_suffix(name: str) -> tuple[str, str]:
    for suffix in (".tar.gz", ".tgz", ".json", ".yaml", ".yml"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    return name, ""


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def submit(item: Path, inbox_root: Path) -> Path:
    """Copy a file or folder into tmp/, then rename it into new/: the producer's side."""
    inbox = Inbox(inbox_root)
    item = Path(item)
    stamp = f"{time.time_ns()}.{os.getpid()}"
    tmp = inbox.dir("tmp") / f"{stamp}.{item.name}"
    if item.is_dir():
        shutil.copytree(item, tmp, symlinks=True)
    else:
        shutil.copyfile(item, tmp, follow_symlinks=False)
    dest = _free_name(inbox.dir("new"), item.name)
    os.rename(tmp, dest)
    return dest
