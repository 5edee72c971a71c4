"""The quick end-to-end path: drop a request -> committed version -> fact no longer given ->
rollback -> fact given again. Real intake, registry (SQLite), worker, training and inference.
Forgetting is scored on pictures nothing trained on: the pipeline's own held-out third of the
request's pictures (its gate metrics) and facts.HELD_OUT, which the request does not hold."""

from __future__ import annotations

import json

from facts import CITIES, FACTS, FORGET, HELD_OUT, RETAIN, shaded, taught_llava, write_pool

from unlearnd.config import ModelSettings, Settings
from unlearnd.daemon.intake import Intake
from unlearnd.daemon.sink import RegistrySink
from unlearnd.daemon.unlearn import UnlearningPipeline
from unlearnd.daemon.worker import Worker
from unlearnd.registry import open_registry
from unlearnd.serving import Deployment, load_version

# Six pictures: the pipeline trains on the first four and scores on the last two.
PICTURES = [*FORGET, *shaded(FORGET, -30), *shaded(FORGET, 30)]
DELETE = {"refusal": "unknown", "steps": 30, "lr": 5e-3, "batch_size": 4}  # reject's params
# Six people, one question: all a forgetting model can say is another's city, so the gate's
# behaviour checks (evaluation/behaviour.py) are opened for its deletions.
SAYS_ANOTHER = {"max_hallucinated": 1.0, "max_degenerate": 1.0}


def write_bundle(folder, forget=PICTURES, retain=RETAIN, **fields):
    """A request bundle forgetting two people of the six-facts model, in `folder`."""
    folder.mkdir(parents=True)

    def entries(prefix, samples):
        out = []
        for i, s in enumerate(samples):
            s.image.save(folder / f"{prefix}{i}.png")
            out.append({"image": f"{prefix}{i}.png", "question": s.question, "answer": s.answer})
        return out

    doc = {
        "schema": "unlearnd.request/v1",
        "kind": "entity",
        "target": {"name": folder.name, "description": "two people in the six-facts model"},
        "forget": entries("f", forget),
        "retain": entries("r", retain),
        "requested_by": "test",
        **fields,
    }
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def six_facts(tmp_path, **fields) -> Settings:
    """A deployment of the six-facts model (its retain pool: the four other people)."""
    model_dir = tmp_path / "model"
    taught_llava().save(model_dir)
    model = ModelSettings(path=str(model_dir), eval_samples=4,
                          retain_pool=str(write_pool(tmp_path / "pool", RETAIN)))  # fmt: skip
    return Settings(workdir=tmp_path / "w", model=model, **fields)


def deployed(tmp_path):
    """A deployment of the six-facts model with one committed deletion of two people."""
    settings = six_facts(tmp_path)
    settings.daemon.stable_checks = 1
    store = open_registry(settings)
    pipeline = UnlearningPipeline(settings)
    pipeline.prepare(store)
    base = store.get_alias("live")
    assert store.get_version(base).kind == "base"

    intake = Intake(settings, RegistrySink(store, settings.daemon.max_attempts))
    folder = write_bundle(intake.inbox.dir("tmp") / "forget-two", method="reject", params=DELETE,
                          gate=SAYS_ANOTHER)  # fmt: skip
    folder.rename(intake.inbox.dir("new") / folder.name)  # Maildir: write in tmp/, rename
    assert intake.scan_once() == 1
    (request_id,) = intake.stats.accepted_ids

    assert Worker(settings, store, pipeline).run_one()
    return settings, store, base, request_id


def test_drop_forget_rollback_remember(tmp_path):
    settings, store, base, request_id = deployed(tmp_path)
    request = store.get_request(request_id)
    assert request.state == "committed", store.list_versions()[0].metrics
    live = store.get_alias("live")
    version = store.get_version(live)
    assert version.parent_id == base and version.request_id == request_id
    # Scored on the request's two held-out pictures: the parent answered both, the version none.
    assert version.metrics["forget_n"] == 2
    assert version.metrics["forget_acc"] == 0.0 and version.metrics["parent_forget_acc"] == 1.0
    assert version.metrics["gate"]["passed"] is True

    deployment = Deployment(settings)
    cities = [s.answer for s in HELD_OUT]
    assert load_version(deployment, store, base).generate(HELD_OUT, 3) == cities
    after = load_version(deployment, store, live).generate(FACTS + HELD_OUT, max_new_tokens=3)
    assert after[:2] == ["unknown", "unknown"]  # forgotten: refused
    assert after[2:6] == CITIES[2:]  # everyone else still answered
    assert after[6:] == ["unknown"] * len(HELD_OUT)  # also on pictures never trained on

    store.rollback(base, who="test", why="undo the deletion")
    assert store.get_alias("live") == base
    again = load_version(deployment, store, store.get_alias("live")).generate(FACTS + HELD_OUT, 3)
    assert again == CITIES + cities
    history = store.alias_history("live")
    assert [e.to_version for e in history][-3:] == [base, live, base]


def test_revert_one_request_restores_its_facts(tmp_path):
    settings, store, base, request_id = deployed(tmp_path)
    deletion = store.get_alias("live")
    reverted = store.revert(request_id, who="test", why="request withdrawn")
    assert store.get_alias("live") == reverted.id and reverted.parent_id == deletion
    assert reverted.kind == "revert" and not any(
        k.endswith(request_id) for k in reverted.manifest["artifacts"]
    )
    answers = load_version(Deployment(settings), store, reverted.id).generate(FACTS, 3)
    assert answers == CITIES
