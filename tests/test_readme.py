"""README says only what is so: every repository file it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `path/to/file.ext` or a bare `NAME.md` in backticks or a link: the repository's own files
# (a bare `name.json` is most often a file the service writes, so not checked).
CITED = re.compile(r"[`(]((?:[\w.-]+/)*[\w-]+\.(?:py|md|json|toml|png|yaml|yml|sh))[`):]")
OUTSIDE = (
    "request.json",
    "report.json",
    "report.html",
    "deployment.json",
    "unlearnd.toml",
    "questions.jsonl",
    "config.json",
)  # fmt: skip - names of files users make


def test_every_file_readme_cites_exists():
    text = (ROOT / "README.md").read_text()
    cited = {m for m in CITED.findall(text)
             if ("/" in m or m.endswith(".md")) and Path(m).name not in OUTSIDE}  # fmt: skip
    found = {c for c in cited if (ROOT / c).exists()}
    assert cited - found == set(), "README cites files the repository lacks"
    assert "DESIGN.md" not in text and "METHODS.md" not in text
