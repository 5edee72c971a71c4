"""README and docs/ say only what is so: every repository file they cite exists, and every link
between them (README -> docs/*.md, page -> page, page -> an anchor) leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# `path/to/file.ext` or a bare `NAME.md` in backticks or parentheses: the repository's own
# files, named from the repository root wherever the page is (a bare `name.json` is most often
# a file the service writes, so not checked).
CITED = re.compile(r"[`(]((?:[\w.-]+/)*[\w-]+\.(?:py|md|json|toml|png|yaml|yml|sh))[`):]")
# A Markdown link or image, [text](target): the target is relative to the page that holds it.
LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = (
    "request.json",
    "report.json",
    "report.html",
    "deployment.json",
    "unlearnd.toml",
    "questions.jsonl",
    "config.json",
)  # fmt: skip - names of files users make


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's ids for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # not code's `#`
    heads = re.findall(r"^#+\s+(.+?)\s*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def links(page: Path) -> list[str]:
    return [t for t in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t)]


def test_every_file_the_pages_cite_exists():
    for page in pages():
        text = LINK.sub("]", page.read_text())  # link targets are checked below, from the page
        cited = {m for m in CITED.findall(text)
                 if ("/" in m or m.endswith(".md")) and Path(m).name not in OUTSIDE}  # fmt: skip
        found = {c for c in cited if (ROOT / c).exists()}
        assert cited - found == set(), f"{page.name} cites files the repository lacks"
        assert "DESIGN.md" not in text and "METHODS.md" not in text, page.name


def test_every_link_leads_to_a_file_and_heading():
    for page in pages():
        for target in links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest), f"{page.name} links to {target}: no such heading"


def test_readme_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    docs = set(DOCS.glob("*.md"))
    assert docs, "docs/ holds the manual"
    assert {d.resolve() for d in docs} <= linked, "a docs page README does not link"


def test_readme_keeps_the_commands_ci_runs():
    """.ci/run takes the set-up and test commands from between these markers in README.md."""
    text = (ROOT / "README.md").read_text()
    for block in ("setup", "test"):
        body = re.search(rf"<!-- {block} -->\n```bash\n(.+?)```\n<!-- /{block} -->", text, re.S)
        assert body and body.group(1).strip(), block
