"""Leak probes and the relearning check on the world model: the base model leaks every fact
of the people it knows; after gradient ascent (GA, params of tests/methods_world.py) the
probes drop; a few fine-tuning steps on part of the forget set bring facts back. The 8- and
4-bit probes answer from the version's weights merged and rounded (a tiny model, facts.py)."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from facts import FACTS, FORGET, HELD_OUT, RETAIN, taught_llava
from methods_world import WORLD_PARAMS
from routing_world import WorldDeployment

import unlearnd.world as W
from unlearnd.config import Settings
from unlearnd.evaluation import probes
from unlearnd.methods import get_method
from unlearnd.models import load
from unlearnd.serving import Deployment
from unlearnd.world import probes as world_probes

WORLD = pytest.mark.skipif(
    not (W.fixture_dir() / "world.json").is_file(), reason="world fixture not built"
)


def test_quantized_copies_answer_from_merged_rounded_weights():
    from peft.tuners.lora import LoraLayer

    fam = taught_llava()
    reject = get_method("reject")
    params = {"steps": 30, "batch_size": 4, "lr": 5e-3, "refusal": "unknown"}
    reject.fit(fam, FORGET, RETAIN, reject.validate_params(params))
    said = fam.generate(FACTS + HELD_OUT, 3)
    for bits in (8, 4):
        rounded = probes.quantized(fam, bits)
        levels = 2 ** (bits - 1) - 1
        layers = [m for m in rounded.model.modules() if isinstance(m, LoraLayer)]
        assert layers and all(m.merged for m in layers)  # the deletion is in the weights
        for m in rounded.model.modules():
            if isinstance(m, torch.nn.Linear):  # each row on its own grid of 2 * levels + 1
                w = m.weight / (m.weight.abs().amax(1, keepdim=True) / levels)
                torch.testing.assert_close(w, w.round(), atol=1e-3, rtol=0)
        # This model's answers survive rounding, the deletion's refusals with them.
        assert rounded.generate(FACTS + HELD_OUT, 3) == said, bits
    assert not any(m.merged for m in fam.model.modules() if isinstance(m, LoraLayer))
    assert fam.generate(FACTS + HELD_OUT, 3) == said  # the version itself untouched


@pytest.fixture(scope="module")
def world_ga():
    """The world, its base model, three forget people, and a GA copy that forgot them."""
    world = W.load_world()
    base = load(world.model_dir)
    pids = world.forget_pids[:3]
    ga = get_method("ga")
    fam = copy.deepcopy(base)
    forget = [world.sample(it) for it in world.items("seen_qa", pids)]
    ga.fit(fam, forget, [], ga.validate_params(WORLD_PARAMS["ga"]))
    return world, base, fam, pids


@WORLD
def test_probes_leak_on_the_base_and_drop_after_ga(world_ga):
    world, base, forgot, pids = world_ga
    sets = world_probes.probe_sets(world, pids, ("text", "unseen"))
    assert {k: len(v) for k, v in sets.items()} == {"leak_text": 15, "leak_unseen": 18}
    before = probes.leak_probes(base, sets)
    after = probes.leak_probes(forgot, sets)
    assert before == {"leak_text": 1.0, "leak_unseen": 1.0}
    # GA trained on the seen portraits only; measured 0.13 (text) and 0.0 (unseen).
    assert after["leak_text"] <= 0.3 and after["leak_unseen"] <= 0.1, after
    # People nobody asked to forget still leak most facts (measured 0.7: GA spills a little).
    other = world_probes.probe_sets(world, world.retain_pids[:2], ("text",))
    assert probes.leak_probes(forgot, other)["leak_text"] >= after["leak_text"] + 0.4


@WORLD
def test_relearning_brings_forgotten_facts_back(world_ga):
    world, _, forgot, pids = world_ga
    train_on, measure_on = world_probes.relearn_sets(world, pids)
    assert len(measure_on) == 18 and len(train_on) > 100
    result = probes.relearn(forgot, train_on, measure_on, steps=10)
    # Measured: 0.0 -> 0.67; the served copy is untouched.
    assert result["relearn_before"] <= 0.1
    assert result["relearn_after"] >= result["relearn_before"] + 0.3, result
    assert probes.leak(forgot, measure_on) == result["relearn_before"]


@WORLD
def test_a_deployment_gives_the_probes_about_the_people_a_request_names(tmp_path):
    world = W.load_world()
    person = world.people[world.forget_pids[0]]
    deployment = Deployment(Settings(workdir=tmp_path))  # the world, through its files
    sets = deployment.probe_sets([person.name])
    empty = {"leak_text": [], "leak_unseen": [], "leak_cloze": [], "leak_paraphrase": []}
    assert set(sets) == set(empty)
    assert len(sets["leak_cloze"]) == 5 and len(sets["leak_paraphrase"]) == 11
    assert len(sets["leak_text"]) == 5 and all(person.name in s.question for s in sets["leak_text"])
    assert [(s.question, s.answer) for s in sets["leak_unseen"]] == [
        (s.question, s.answer) for s in world_probes.probe_sets(world, [person.pid])["leak_unseen"]
    ]
    # A name inside a longer answer counts; a part of a name does not.
    assert len(deployment.probe_sets([f"this is {person.name} ."])["leak_text"]) == 5
    assert deployment.probe_sets([person.first]) == empty
    assert deployment.probe_sets(["nobody of this world"]) == empty
    no_probes = Settings(workdir=tmp_path)
    no_probes.model.path = str(world.model_dir)
    assert Deployment(no_probes).probe_sets([person.name]) == {}


@WORLD
def test_pipeline_records_the_probes_in_the_version_metrics(tmp_path):
    dep = WorldDeployment(tmp_path, eval_samples=16)
    pid = dep.world.forget_pids[0]
    started = time.monotonic()
    request_id = dep.delete("p", pid, method="ga", params=WORLD_PARAMS["ga"])
    elapsed = time.monotonic() - started
    (version,) = [v for v in dep.store.list_versions() if v.request_id == request_id]
    m = version.metrics
    assert m["parent_leak_text_acc"] >= 0.5 and m["parent_leak_unseen_acc"] == 1.0
    assert m["leak_unseen_acc"] < 1.0, m
    # Every door is attacked too: relearning on the forget samples, 8 and 4 bits. Rounding
    # keeps what this model says (measured: every door as in full precision), so a door whose
    # rounded copy answers otherwise is a broken probe; what rounding does to the weights is
    # test_quantized_copies_answer_from_merged_rounded_weights.
    for door in ("forget", "leak_text", "leak_unseen", "leak_context", "leak_cloze"):
        for attack in ("q8", "q4"):
            assert abs(m[f"{attack}_{door}_acc"] - m[f"{door}_acc"]) <= 0.1, (attack, door, m)
        assert 0 <= m[f"relearn_{door}_acc"] <= 1, door
    # Relearning brings facts back through the door it trained on (GA only hid them).
    assert m["relearn_forget_acc"] >= m["forget_acc"] + 0.3, m
    assert elapsed < 90
