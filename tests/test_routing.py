"""Routing parts without a model: relevance, the pool decision, the gate, refusal categories."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnd.evaluation import metrics
from unlearnd.refusals import RefusalTable, category_of
from unlearnd.routing.concepts import Centers, prototypes, unit_rows
from unlearnd.routing.pool import decide, new_expert_id, relevance
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task
from unlearnd.world import questions as q
from unlearnd.world.requests import WORLD_REFUSALS

DIM = 64  # at 16, seeds 1 and 2 were 0.58 apart and the image door test flaked
RNG = np.random.default_rng(0)
CENTERS = Centers(np.zeros(DIM, np.float32), np.zeros(DIM, np.float32))
SETTINGS = {"pool_size": 2, "reuse_threshold": 0.5, "a": 100.0, "b": 0.6}


def concept(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A request's (visual, textual) prototypes: noisy copies of a seeded direction."""
    rng = np.random.default_rng(seed)
    v, t = rng.normal(size=DIM), rng.normal(size=DIM)
    noise = RNG.normal(scale=0.05, size=(3, DIM))
    return (v + noise).astype(np.float32), (t + noise).astype(np.float32)


def task(request: str, seed: int, expert: str, seq: int) -> Task:
    return Task(request, expert, request, *concept(seed), seq=seq)


def test_relevance_is_cores_sigmoid():
    assert relevance(1.0, 1.0, 100, 0.05) == pytest.approx(1.0)
    assert relevance(0.0, 1.0, 100, 0.05) == pytest.approx(1 / (1 + np.exp(5)))
    assert relevance(0.6, 1.0, 100, 0.6) == pytest.approx(0.5)


def test_pool_new_then_reuse_then_adapt_least_used():
    first = decide("r1", concept(1), [], CENTERS, **SETTINGS)
    assert (first.action, first.expert_id) == ("new", new_expert_id("r1"))
    tasks = [task("r1", 1, "e1", 1)]
    again = decide("r2", concept(1), tasks, CENTERS, **SETTINGS)
    assert (again.action, again.expert_id, again.replay) == ("reuse", "e1", ["r1"])
    assert again.relevance["e1"] > 0.99
    other = decide("r3", concept(2), tasks, CENTERS, **SETTINGS)
    assert other.action == "new" and other.relevance["e1"] < 0.01
    full = [*tasks, task("r2", 1, "e1", 2), task("r3", 2, "e2", 3)]
    adapt = decide("r4", concept(3), full, CENTERS, **SETTINGS)
    assert (adapt.action, adapt.expert_id, adapt.replay) == ("adapt", "e2", ["r3"])
    assert adapt.uses == {"e1": 2, "e2": 1}


def test_the_image_door_turns_on_only_the_matching_expert():
    gate = ExpertSwitch(
        [task("r1", 1, "e1", 1), task("r2", 2, "e2", 2)], CENTERS, SwitchSettings(b=0.6)
    )
    v1, _ = concept(1)
    v3, _ = concept(3)
    routes = gate.route(np.stack([v1[0], v3[0]]), ["what is this ?", "what is this ?"])
    assert set(routes[0]) == {"e1"} and routes[0]["e1"] > 0.99
    assert routes[1] == {}
    assert gate.route(None, ["what is this ?"]) == [{}]  # no image, no name: base model
    missing = np.full((1, DIM), np.nan, np.float32)
    assert gate.route(missing, ["what is this ?"]) == [{}]
    hard = ExpertSwitch([task("r1", 1, "e1", 1)], CENTERS, SwitchSettings(b=0.6, mode="hard"))
    assert hard.route(v1[:1], ["anything"]) == [{"e1": 1.0}]
    with pytest.raises(ValueError, match="continuous or hard"):
        ExpertSwitch([], CENTERS, SwitchSettings(mode="soft"))


def test_the_text_door_turns_an_expert_on_for_a_question_naming_its_target():
    named = Task("r1", "e1", "Ada Byron", *concept(1), seq=1, names=("Ada Byron", "Countess"))
    other = task("r2", 2, "e2", 2)
    gate = ExpertSwitch([named, other], CENTERS, SwitchSettings(b=0.6, mode="hard"))
    asked = ["Where does Ada Byron live ?", "what is ada byron's job?", "Who is the Countess ?",
             "Where does Ada live ?", "Where does Adam Byronson live ?"]  # fmt: skip
    assert gate.route(None, asked) == [{"e1": 1.0}, {"e1": 1.0}, {"e1": 1.0}, {}, {}]
    # The image door still works beside it; a picture of the other target under a question
    # naming the first turns both on.
    v2, _ = concept(2)
    assert set(gate.route(v2[:1], ["Is this Ada Byron ?"])[0]) == {"e1", "e2"}
    closed = ExpertSwitch([named], CENTERS, SwitchSettings(b=0.6, text_door=False))
    assert closed.route(None, asked[:1]) == [{}]
    # Older artifacts carry no names: the label is the name.
    assert task("Grace Hopper", 3, "e3", 3).all_names == ("Grace Hopper",)


def test_the_text_door_by_meaning_fires_above_the_requests_own_threshold():
    _, keys = concept(1)
    door = {"text_keys": keys, "text_center": np.zeros(DIM, np.float32), "text_threshold": 0.9,
            "text_key": "prompt_state"}  # fmt: skip
    meant = Task("r1", "e1", "Ada Byron", *concept(1), seq=1, names=("Ada Byron",), **door)
    gate = ExpertSwitch([meant], CENTERS, SwitchSettings(b=0.6, mode="hard"))
    near = keys[:1] + RNG.normal(scale=0.05, size=(1, DIM)).astype(np.float32)
    far = concept(2)[1][:1]
    asked = ["Where does Byron live ?", "Where does Grace live ?", "Where does Ada Byron live ?"]
    assert gate.text_key_kinds == ["prompt_state"]
    assert gate.route(None, asked, {"prompt_state": np.concatenate([near, far, far])}) == [
        {"e1": 1.0},
        {},
        {"e1": 1.0},
    ]
    assert gate.route(None, asked) == [{}, {}, {"e1": 1.0}]  # no keys: by name alone
    back = Task.from_artifact(meant.tensors(), meant.metadata())
    assert back.text_threshold == 0.9 and np.array_equal(back.text_keys, keys)
    assert back.text_key == "prompt_state"
    # A door stored before its key was named was built on answer distributions: read so.
    unnamed = {k: v for k, v in meant.metadata().items() if k != "text_key"}
    assert Task.from_artifact(meant.tensors(), unnamed).text_key == "answer_distribution"
    # An artifact stored before the door (no threshold) and a closed text door: by name alone.
    older = {k: v for k, v in meant.metadata().items() if k != "text_threshold"}
    assert not Task.from_artifact(meant.tensors(), older).reads_meaning
    closed = ExpertSwitch([meant], CENTERS, SwitchSettings(b=0.6, text_door=False))
    assert not closed.reads_meaning
    assert closed.route(None, asked[:1], {"prompt_state": near}) == [{}]


def test_every_routed_request_can_fire_however_many_there_are():
    tasks = [task(f"r{i}", 100 + i, f"e{i}", i + 1) for i in range(200)]
    gate = ExpertSwitch(tasks, CENTERS, SwitchSettings(b=0.6, mode="hard"))
    queries = np.stack([concept(100 + i)[0][0] for i in range(200)])
    routes = gate.route(queries, ["q"] * 200)
    assert all(f"e{i}" in r for i, r in enumerate(routes))  # not only the 64 nearest


def test_a_calibrated_threshold_is_the_requests_own():
    strict = Task("r1", "e1", "a", *concept(1), seq=1, visual_threshold=0.999)
    loose = Task("r2", "e2", "b", *concept(1), seq=2, visual_threshold=0.5)
    gate = ExpertSwitch([strict, loose], CENTERS, SwitchSettings(b=0.6, mode="hard"))
    v1, _ = concept(1)
    noisy = v1[:1] + RNG.normal(scale=0.3, size=(1, DIM)).astype(np.float32)
    assert gate.route(noisy, ["q"]) == [{"e2": 1.0}]
    back = Task.from_artifact(strict.tensors(), strict.metadata())
    assert back.visual_threshold == 0.999 and back.names == ()


def test_pool_similarity_is_floored_at_zero():
    v, t = concept(1)
    old = Task("r1", "e1", "a", v, t, seq=1)
    anti = (-v, -t)  # anti-aligned in both: (-1) * (-1) must not read as similar
    assert decide("r2", anti, [old], CENTERS, **SETTINGS).action == "new"


def test_prototypes_and_unit_rows():
    x = RNG.normal(size=(50, DIM)).astype(np.float32)
    assert prototypes(x, 4).shape == (4, DIM)
    assert prototypes(x[:3], 4).shape == (3, DIM)  # few rows: kept as they are
    assert np.allclose(np.linalg.norm(unit_rows(x), axis=1), 1)
    assert not np.isnan(unit_rows(np.zeros((1, DIM)))).any()


def test_task_round_trips_through_artifact_tensors():
    original = task("r1", 1, "e1", 7)
    back = Task.from_artifact(original.tensors(), original.metadata())
    assert back.request_id == "r1" and back.expert_id == "e1" and back.seq == 7
    assert np.array_equal(back.visual, original.visual)
    with pytest.raises(ValueError, match="not a concepts artifact"):
        Task.from_artifact(original.tensors(), {"kind": "lora"})


def test_every_world_question_gets_its_categorys_refusal():
    world = RefusalTable(WORLD_REFUSALS)
    for category, templates in q.VISUAL.items():
        for template in templates:
            assert category_of(template) == category, template
            assert world(template) == q.REFUSALS[category][0]
    assert world("Which shape is in the picture ?") == WORLD_REFUSALS["fallback"]
    plain = RefusalTable()
    assert plain("Which shape is in the picture ?") == "I'm sorry, but I can't help with that."
    # The product's own refusals are plain English and name what was asked.
    assert plain("Where does this person live ?") == (
        "I'm sorry, but I can't share where this person lives."
    )


def test_context_refusal_rate_needs_the_right_category():
    said = ["I cannot share where this person lives .", "I cannot identify this person .", "x"]
    asked = ["location", "location", "identity"]
    assert metrics.context_refusal_rate(said, asked, q.REFUSALS) == pytest.approx(1 / 3)
    assert metrics.refusal_rate(said, q.REFUSALS) == pytest.approx(2 / 3)


def test_calibration_leaves_whole_images_out_and_sits_near_the_background():
    from unlearnd.routing.calibration import calibrate

    centre = np.random.default_rng(5).normal(size=DIM)
    pictures = [centre + np.random.default_rng(10 + i).normal(scale=0.3, size=DIM)
                for i in range(4)]  # fmt: skip
    rows = np.stack([p for p in pictures for _ in range(3)]).astype(np.float32)  # 3 questions each
    images = [i for i in range(4) for _ in range(3)]
    background = np.random.default_rng(6).normal(size=(50, DIM)).astype(np.float32)
    c = calibrate(rows, images, prototypes(rows, 4), background, CENTERS, 4, fallback=0.6)
    assert len(c.own) == 4 and max(c.own) < 0.999  # its own copies never stand in for an image
    lo, hi = max(c.background), min(c.own)
    assert lo < c.threshold < hi and c.threshold - lo <= 0.1 * (hi - lo) + 1e-4
    assert c.miss == 0 and c.false_fire == 0
    # One picture: nothing to leave out, the deployment's threshold stands.
    single = calibrate(rows[:3], images[:3], rows[:1], background, CENTERS, 4, fallback=0.6)
    assert single.threshold == 0.6 and single.own == []
    # Overlapping: the threshold trades misses against false fires.
    mixed = calibrate(rows, images, prototypes(rows, 4), rows[:6] * 0.9, CENTERS, 4, 0.6)
    assert 0 <= mixed.miss <= 1 and mixed.false_fire > 0


def test_a_capped_threshold_lets_through_at_most_its_share_of_the_background():
    from unlearnd.routing.calibration import threshold

    own = np.array([0.90, 0.95, 0.97], np.float32)
    background = np.linspace(0.0, 0.96, 100).astype(np.float32)  # overlaps the own scores
    free = threshold(own, background, 0.5)
    capped = threshold(own, background, 0.5, max_fires=0.02)
    assert (background >= free).mean() > 0.02  # recall - fires alone lets more through
    assert (background >= capped).mean() <= 0.02 and capped > free
    # No candidate within the cap: above the whole background.
    assert threshold(own, np.full(10, 0.99, np.float32), 0.5, max_fires=0.02) > 0.99
