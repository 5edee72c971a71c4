"""A user's own model folder (random-weight llava and qwen2_vl, saved with save_pretrained):
a request through intake, worker and registry is scored on held-out samples, and its report
lists every door, measurable or not."""

from __future__ import annotations

import json

import pytest
from facts import write_pool
from local_daemon import LocalDaemon
from PIL import Image

from unlearnd.config import ModelSettings, Settings
from unlearnd.evaluation import report
from unlearnd.models import Sample, tiny
from unlearnd.models.tokenizer import build_word_tokenizer

NAME = "Ada Byron"
WORDS = "who is this person where does live in which city ada byron lives paris rome".split()
DOORS = {"forget", "forget_seen", "leak_text", "leak_paraphrase", "leak_context"}


def portrait(i: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (200, 40 + 20 * i, 40))


def bundle(folder):
    """Six pictures of the target, each asked in two wordings: as a user writes a request."""
    folder.mkdir(parents=True)
    forget = []
    for i in range(6):
        portrait(i).save(folder / f"f{i}.png")
        for question in ("Where does this person live ?", "In which city does this person live ?"):
            forget.append({"image": f"f{i}.png", "question": question,
                           "answer": f"{NAME} lives in paris"})  # fmt: skip
    target = {"name": NAME, "description": "a person who asked to be forgotten"}
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": target, "forget": forget}
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_a_request_on_a_users_folder_is_scored_held_out_through_every_door(family, tmp_path):
    model = tmp_path / "model"
    tiny(family, tokenizer=build_word_tokenizer(WORDS), seed=0, vision_layers=1,
         text_layers=1).save(model)  # fmt: skip
    question = "Where does this person live ?"
    others = [
        Sample(question, "rome", Image.new("RGB", (32, 32), (0, 90, 9 * i))) for i in range(8)
    ]
    pool = str(write_pool(tmp_path / "pool", others))
    deployment = ModelSettings(path=str(model), retain_pool=pool, general_pool=pool, eval_samples=4)
    settings = Settings(workdir=tmp_path / "w", model=deployment)
    settings.methods["refuser"] = {"steps": 2}
    daemon = LocalDaemon(settings)
    request_id = daemon.submit(bundle(tmp_path / "req"))
    (version,) = [v for v in daemon.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    # Four of the six pictures and one wording of the two were trained on; forget is scored
    # on the other two pictures, the other wording and the other doors.
    assert (m["forget_seen_n"], m["forget_n"], m["leak_paraphrase_n"]) == (4, 2, 6)
    assert m["leak_text_n"] > 0 and m["leak_context_n"] > 0
    doors = report.doors(m)
    assert {d["door"] for d in doors} >= DOORS
    # A random model states no fact: nothing is measurable, and the gate says so.
    assert version.status == "gated" and "forget_acc not measurable" in m["gate"]["failed"][0]
    page = report.render_html(report.build(daemon.store, version.id) | {"plots": {}})
    assert "<h2>Doors</h2>" in page and "leak_context" in page
