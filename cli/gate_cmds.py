"""`unlearnd gate scan [--version V]`: how a version's expert switch separates each routed
request's images from the deployment's retain and general pools (daemon/scan.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearnd.cli.common import (
    EXIT_NOT_FOUND,
    VERSION_HELP,
    chosen_version,
    console,
    existing_store,
    fail,
    print_json,
    print_table,
    settings,
)

gate_app = typer.Typer(help="The expert switch of a version: thresholds and what they let by.")


def register(app: typer.Typer) -> None:
    app.add_typer(gate_app, name="gate")


@gate_app.command("scan")
def scan_cmd(
    ctx: typer.Context,
    version: str | None = typer.Option(None, "--version", "-v", help=VERSION_HELP),
    out: Path | None = typer.Option(
        None, "--out", help="Where to write the plot (default: ./gate-scan-v<V>.png)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with every cosine)."),
) -> None:
    """Per routed request: its own images' cosines (each left out) against the retain and
    general pools, its threshold, the one the pools would give it now, the expected miss and
    false-fire rates (and the same for its text door: questions by name variants against the
    pools' and namesakes' questions); and the share of the pools' own questions the version
    would refuse."""
    from unlearnd.daemon.scan import scan
    from unlearnd.evaluation.plots import plot_scan
    from unlearnd.registry import NotFound

    s = settings(ctx)
    store = existing_store(ctx)
    try:
        chosen = chosen_version(store, version)
        result = scan(s, store, chosen)
    except NotFound as e:
        fail(str(e), EXIT_NOT_FOUND)
    finally:
        store.close()
    rows = [r for r in result["requests"] if r["image_door"]]
    text_only = [r for r in result["requests"] if not r["image_door"]]
    path = out or Path(f"gate-scan-v{chosen}.png")
    if rows:
        plot_scan({f"{r['target']} ({r['request'][:16]})": r for r in rows}, path)
        result["plot"] = str(path)
    if as_json:
        print_json(result)
        return
    if not result["requests"]:
        console.print(f"version {chosen} routes no request: every query runs on the base model")
        return
    for r in text_only:
        console.print(f"{r['request']} ({r['target']}): no images, so no image door; a "
                      "question reaches its expert through the text door only")  # fmt: skip
    if rows:
        print_table(
            [(r["request"], r["target"], f"{r['threshold']:.3f}", f"{r['calibrated_now']:.3f}",
              f"{r['miss']:.0%}", f"{r['false_fire']:.1%}") for r in rows],
            ("request", "target", "threshold", "from the pools now", "miss", "false fires"),
            title=f"image door of version {chosen}",
        )  # fmt: skip
    texts = [
        (
            r["request"],
            r["target"],
            f"{t['threshold']:.3f}",
            f"{t['calibrated_now']:.3f}",
            f"{t['miss']:.0%}",
            f"{t['false_fire']:.1%}",
        )
        for r in result["requests"]
        if (t := r.get("text"))
    ]
    if texts:
        print_table(texts, ("request", "target", "threshold", "from the pools now", "miss",
                            "false fires"), title=f"text door of version {chosen}")  # fmt: skip
    tells = [(r["request"], r["target"], ", ".join(r["tells"]) or "none (an older request)",
              f"{', '.join(r['scoped'])} (named as {', '.join(r['scope'])})" if r["scope"]
              else "none") for r in result["requests"]]  # fmt: skip
    print_table(tells, ("request", "target", "an answer that says one is withheld",
                        "and, to a question that names the target by one word alone"),
                title=f"answer check of version {chosen}")  # fmt: skip
    refused = result["false_refusal"]
    console.print(
        f"{refused:.1%} of {result['background_n']} retain and general questions turn an "
        f"expert on (image or name); plot: {path}"
    )
