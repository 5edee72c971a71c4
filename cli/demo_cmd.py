"""`unlearnd demo`: the whole loop on the committed world model, in one command.

Starts the service (intake + worker) in this process, submits a deletion of one fictitious
person (to the default method, a refuser expert behind the routing gate), waits for it with a
live progress view, shows the metrics and versions, asks the model
about the person before and after, rolls the deletion back and asks again.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import typer

from unlearnd.cli.common import console, err_console, fail, print_json, print_table, settings
from unlearnd.cli.daemon_cmds import TERMINAL, watch_request


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
) -> None:
    """Delete a person from the world model, show before/after, roll it back."""
    from unlearnd.daemon.service import Service
    from unlearnd.daemon.unlearn import UnlearningPipeline
    from unlearnd.serving import Deployment
    from unlearnd.world import load_world

    s = settings(ctx)
    shown: dict = {}  # --json: each table as a list of rows by column

    def table(name: str, rows: list, columns: tuple, title: str) -> None:
        if as_json:
            shown[name] = [dict(zip(columns, row, strict=True)) for row in rows]
        else:
            print_table(rows, columns, title=title)

    say = err_console.print if as_json else console.print  # stdout stays the JSON
    s.daemon.stable_checks = 1
    if s.model.path:
        fail("the demo runs on the built-in world model: unset [model] path")
    world = load_world()
    deployment = Deployment(s)  # the world's provider writes its pools and probes once
    say(f"[bold]model[/] {deployment.model_dir}   [bold]work dir[/] {s.workdir}")
    pipeline = UnlearningPipeline(s)
    service = Service(s, pipeline)
    store = service.store
    parent = store.get_alias("live")
    thread = threading.Thread(target=service.run, name="unlearnd-service", daemon=True)
    thread.start()
    try:
        pid = world.forget_pids[0]
        person = world.people[pid]
        known = {r.request_id for r in store.list_requests(limit=1000)}  # earlier demo runs
        tmp = Path(tempfile.mkdtemp(prefix="unlearnd-demo-"))
        bundle = _bundle(world, pid, tmp)
        staged = s.inbox / "tmp" / bundle.name
        shutil.move(str(bundle), staged)
        staged.rename(s.inbox / "new" / bundle.name)  # Maildir: tmp/ then rename into new/
        say(f"submitted a request to forget [bold]{person.name}[/]")

        request_id = None
        deadline = time.monotonic() + timeout_s
        while request_id is None and time.monotonic() < deadline:  # intake takes the bundle
            found = [
                r
                for r in store.list_requests(limit=20)
                if r.source_name == bundle.name and r.request_id not in known
            ]
            request_id = found[0].request_id if found else None
            time.sleep(0.2)
        if request_id is None:
            fail(f"the inbox did not take the request within {timeout_s:.0f} s")
        if watch_request(store, request_id, timeout_s, show=not as_json) not in TERMINAL:
            fail(f"the request did not finish within {timeout_s:.0f} s")
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
    finally:
        service.stop()
        thread.join(timeout=60)
