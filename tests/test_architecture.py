"""ARCHITECTURE.md against the code: every folder is on its map, imports between folders follow
its table, no module imports another that imports it back, and the product runs with the world
package blocked."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
    "package-dir"
]
FOLDER = {name: folder for name, folder in PACKAGE_DIRS.items()}  # unlearnd.x -> x/


def rules() -> dict[str, set[str]]:
    """folder -> the folders it may import, from the table between the import-rules markers."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    table = text.split("<!-- import-rules -->")[1].split("<!-- /import-rules -->")[0]
    out = {}
    for line in table.strip().splitlines()[2:]:  # past the header and its rule
        cells = [c.strip() for c in line.strip("|").split("|")]
        folder = cells[1].strip("`/")
        allowed = cells[3]
        out[folder] = set() if allowed == "-" else {a.strip() for a in allowed.split(",")}
    return out


def module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    package = next(name for name, f in FOLDER.items() if f == folder)
    rel = path.relative_to(ROOT / folder).with_suffix("").parts
    parts = [p for p in rel if p != "__init__"]
    return ".".join([package, *parts])


def sources() -> dict[str, Path]:
    """module name -> file, for every module of every folder pyproject maps."""
    out = {}
    for folder in set(FOLDER.values()):
        for path in (ROOT / folder).rglob("*.py"):
            if "assets" not in path.parts:
                out[module_name(path)] = path
    return out


MODULES = sources()


def folder_of(module: str) -> str:
    """The root folder a module name lives in (the longest mapped package prefix)."""
    best = max((n for n in FOLDER if module == n or module.startswith(n + ".")), key=len)
    return FOLDER[best]


def imported(path: Path) -> set[str]:
    """Every project module a file imports, at the top or inside a function: a module
    `from x import y` names when y is one, else x itself."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        else:
            continue
        out.update(n for n in names if n == "unlearnd" or n.startswith("unlearnd."))
    return out


def test_every_folder_is_on_the_map():
    assert set(rules()) == set(FOLDER.values())


def test_imports_between_folders_follow_the_map():
    allowed = rules()
    wrong = []
    for module, path in sorted(MODULES.items()):
        here = folder_of(module)
        for target in sorted(imported(path)):
            there = folder_of(target)
            if there != here and there not in allowed[here]:
                wrong.append(f"{path.relative_to(ROOT)} imports {target} ({here} -> {there})")
    assert not wrong, "imports ARCHITECTURE.md does not allow:\n" + "\n".join(wrong)


def test_no_module_imports_one_that_imports_it_back():
    graph = {m: {t for t in imported(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


BLOCKED = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    from pathlib import Path

    class NoWorld:
        def find_spec(self, name, path=None, target=None):
            if name == "unlearnd.world" or name.startswith("unlearnd.world."):
                raise ImportError(f"{name} is blocked: the product must not need it")

    sys.meta_path.insert(0, NoWorld())
    import unlearnd
    skip = ("unlearnd.world", "unlearnd.registry.migrations.env")  # env: alembic's script
    seen = 0
    for package in ("registry", "models", "routing", "methods", "evaluation", "serving",
                    "daemon", "api", "cli"):
        pkg = importlib.import_module(f"unlearnd.{package}")
        seen += 1
        for info in pkgutil.walk_packages(pkg.__path__, f"unlearnd.{package}."):
            if not info.name.startswith(skip):
                importlib.import_module(info.name)
                seen += 1
    importlib.import_module("unlearnd.config")

    from test_end_to_end import deployed
    settings, store, base, request_id = deployed(Path(sys.argv[1]))
    assert store.get_request(request_id).state == "committed"
    assert not any(m.startswith("unlearnd.world") for m in sys.modules)
    print(f"OK {seen} modules")
    """
)


def test_the_product_imports_and_runs_a_job_with_the_world_blocked(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(tmp_path)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "tests"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK") and int(done.stdout.split()[1]) > 80, done.stdout
