"""A request the deployment cannot take is rejected at intake, with a reason file, before any
job is queued: a kind the model's family does not serve, or pools too small to both score
and train a deletion (on tiny random-weight folders saved with save_pretrained)."""

from __future__ import annotations

import json

import pytest
from facts import write_pool
from local_daemon import LocalDaemon
from PIL import Image

from unlearnd.config import ModelSettings, Settings
from unlearnd.models import Sample, tiny
from unlearnd.models.tokenizer import build_word_tokenizer

WORDS = "who is this person where does live ada byron lives in paris rome".split()


def entity_bundle(folder):
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 60, 40)).save(folder / "f0.png")
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Ada Byron"},
           "forget": [{"image": "f0.png", "question": "Where does this person live ?",
                       "answer": "ada byron lives in paris"}]}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def rejected(daemon: LocalDaemon, folder) -> list[dict]:
    with pytest.raises(RuntimeError, match="did not accept"):
        daemon.submit(folder)
    report = daemon.intake.inbox.dir("failed") / f"{folder.name}.error.json"
    assert (daemon.intake.inbox.dir("failed") / folder.name).exists()  # kept, not lost
    assert daemon.store.list_requests() == []
    return json.loads(report.read_text())["errors"]


def test_an_entity_request_on_a_clip_deployment_is_rejected_at_intake(tmp_path):
    clip = tmp_path / "clip"
    tiny("clip", vision_layers=1, text_layers=1).save(clip)
    daemon = LocalDaemon(Settings(workdir=tmp_path / "w", model=ModelSettings(path=str(clip))))
    errors = rejected(daemon, entity_bundle(tmp_path / "person"))
    assert errors == [{"field": "kind", "message": "a CLIP deployment takes domain requests "
                                                   "only, not 'entity'"}]  # fmt: skip


def test_a_retain_pool_evaluation_takes_whole_is_named_at_intake(tmp_path):
    model = tmp_path / "model"
    tiny("llava", tokenizer=build_word_tokenizer(WORDS), vision_layers=1,
         text_layers=1).save(model)  # fmt: skip
    rows = [Sample("Where does this person live ?", "rome", Image.new("RGB", (32, 32)))] * 8
    pool = str(write_pool(tmp_path / "pool", rows))
    settings = Settings(workdir=tmp_path / "w", model=ModelSettings(path=str(model),
                                                                    retain_pool=pool))  # fmt: skip
    errors = rejected(LocalDaemon(settings), entity_bundle(tmp_path / "person"))
    (error,) = errors
    assert error["field"] == "model"
    assert "has 8 rows and evaluation takes 48" in error["message"], error
    assert "lower [model] eval_samples (e.g. 4)" in error["message"]
