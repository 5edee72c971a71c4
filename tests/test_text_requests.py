"""A text-only request on a user's folder (random-weight llava): scored on questions it never
trained on, with its given facts, and every report line says which doors the parent never
answered."""

from __future__ import annotations

import json
import logging

from local_daemon import LocalDaemon

from unlearnd.config import ModelSettings, Settings
from unlearnd.evaluation import report
from unlearnd.evaluation.promotion import PARENT_NONE
from unlearnd.models import tiny
from unlearnd.models.tokenizer import build_word_tokenizer

NAME = "Ada Byron"
WORDS = "what did ada byron write in which year poem rome paris lives".split()


def bundle(folder):
    """Six questions by name, each with its fact: as a user writes a text-only request."""
    folder.mkdir(parents=True)
    forget = [{"question": f"What did {NAME} write in year {i} ?",
               "answer": f"In year {i} {NAME} wrote poem {i}", "facts": [f"poem {i}"]}
              for i in range(6)]  # fmt: skip
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": NAME},
           "forget": forget, "method": "ga", "params": {"steps": 1}}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def test_a_text_only_request_is_scored_on_held_out_questions_and_says_what_is_unmeasurable(
    tmp_path, caplog
):
    model = tmp_path / "model"
    tiny("llava", tokenizer=build_word_tokenizer(WORDS), seed=0, vision_layers=1,
         text_layers=1).save(model)  # fmt: skip
    pool = tmp_path / "pool.jsonl"  # a text-only pool
    pool.write_text((json.dumps({"question": "Where does Bo live ?", "answer": "rome"}) + "\n") * 8)
    pool = str(pool)
    deployment = ModelSettings(path=str(model), retain_pool=pool, general_pool=pool, eval_samples=4)
    daemon = LocalDaemon(Settings(workdir=tmp_path / "w", model=deployment))
    with caplog.at_level(logging.INFO, logger="unlearnd.daemon.unlearn"):
        request_id = daemon.submit(bundle(tmp_path / "req"))
    (version,) = [v for v in daemon.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    # The last two of six questions were never trained on: they are the forget door.
    assert (m["forget_n"], m["forget_seen_n"]) == (2, 4)
    # A random model states no fact: every door says so, in the log, the report and its page.
    assert m["parent_forget_acc"] == 0 and version.status == "gated"
    assert f"forget {PARENT_NONE}" in caplog.text
    rows = {d["door"]: d for d in report.doors(m)}
    assert rows["forget"]["note"] == PARENT_NONE and rows["leak_context"]["note"] == PARENT_NONE
    page = report.render_html(report.build(daemon.store, version.id) | {"plots": {}})
    assert f"{PARENT_NONE}: forget, forget_seen, leak_context" in page
    assert report.score_line("leak_text_acc", 0.0, 0.0) == f"0.000 (parent 0.000): {PARENT_NONE}"
    assert report.score_line("retain_acc", 0.5, 1.0) == "0.500 (parent 1.000)"
