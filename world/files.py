"""Reading a saved world: its JSON document, given the folder or the file itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_world_json(path: str | Path, name: str) -> tuple[dict[str, Any], Path]:
    """(document, file) for `path`, a world folder holding `name` or that file itself."""
    path = Path(path)
    file = path / name if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no {name} at {file}")
    try:
        return json.loads(file.read_text()), file
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON: {e}") from e
