"""The CLIP world: deterministic drawings in visibly different domains, the committed tiny
CLIP that classifies them zero-shot with ADU's fixed prompt, and a (tiny) rebuild."""

from __future__ import annotations

import colorsys
import json
from collections import Counter

import numpy as np
import pytest

from unlearnd.methods.adu import balanced_batches
from unlearnd.models import load
from unlearnd.world.clip_train import build_clip_world
from unlearnd.world.clip_world import (
    FIXTURE,
    ClipWorld,
    ClipWorldSpec,
    load_clip_world,
    zero_shot_accuracy,
)

SMALL = ClipWorldSpec(classes=("car", "key", "star"), domains=("photo", "sketch"), n_train=10)


def test_an_image_is_a_pure_function_of_seed_domain_class_split_and_index():
    a, b = ClipWorld(), ClipWorld()
    for args in (("photo", "car", "train", 0), ("sketch", "key", "unseen", 3)):
        assert a.image(*args).tobytes() == b.image(*args).tobytes()
    first = a.image("painting", "fish", "train", 0)
    assert first.size == (32, 32) and first.mode == "RGB"
    others = (
        a.image("painting", "fish", "train", 1),
        a.image("painting", "fish", "unseen", 0),
        ClipWorld(ClipWorldSpec(seed=1)).image("painting", "fish", "train", 0),
    )
    assert all(o.tobytes() != first.tobytes() for o in others)
    # A world that keeps fewer classes or domains draws the same pixels for those it keeps.
    assert ClipWorld(SMALL).image("sketch", "key", "unseen", 2) == a.image(
        "sketch", "key", "unseen", 2
    )


def test_bad_names_indices_and_specs_are_refused_by_name():
    world = ClipWorld()
    with pytest.raises(ValueError, match="domain 'oil'"):
        world.image("oil", "car", "train", 0)
    with pytest.raises(ValueError, match="class 'dog'"):
        world.image("photo", "dog", "train", 0)
    with pytest.raises(ValueError, match="split"):
        world.image("photo", "car", "test", 0)
    with pytest.raises(ValueError, match="index 40 out of range"):
        world.image("photo", "car", "unseen", 40)
    with pytest.raises(ValueError, match="classes"):
        ClipWorldSpec(classes=("car", "car"))
    with pytest.raises(ValueError, match="n_train"):
        ClipWorldSpec(n_train=0)


def _style(image) -> np.ndarray:
    """Saturation, paper-white share, pixel-to-pixel change, share of the commonest colour,
    grain (sensor noise makes neighbours differ as much as pixels two apart)."""
    rgb = np.asarray(image, float) / 255
    sat = np.array([colorsys.rgb_to_hsv(*p)[1] for p in rgb.reshape(-1, 3)])
    white = ((rgb.reshape(-1, 3).min(-1) > 0.85) & (sat < 0.1)).mean()
    change = np.abs(np.diff(rgb, axis=0)).mean() + np.abs(np.diff(rgb, axis=1)).mean()
    apart = np.abs(rgb[2:] - rgb[:-2]).mean() + np.abs(rgb[:, 2:] - rgb[:, :-2]).mean()
    flat = Counter(map(tuple, (rgb * 255).astype(int).reshape(-1, 3))).most_common(1)[0][1]
    return np.array([sat.mean(), white, change, flat / sat.size, change / apart])


def test_domains_are_told_apart_by_simple_pixel_statistics():
    """Nearest centroid on four statistics, fitted on training images, names the domain of
    unseen images: the domains differ in look, not only in caption."""
    world = ClipWorld()
    fit = {d: np.stack([_style(s.image) for s in world.samples("train", [d], 2)])
           for d in world.domains}  # fmt: skip
    scale = np.concatenate(list(fit.values())).std(0)
    centres = {d: f.mean(0) / scale for d, f in fit.items()}
    hits = total = 0
    for s in world.samples("unseen", per_pair=2):
        f = _style(s.image) / scale
        guess = min(centres, key=lambda d: np.linalg.norm(f - centres[d]))
        hits += guess == s.domain
        total += 1
    assert hits / total >= 0.95, hits / total


def test_few_shot_subsets_and_domain_balanced_batches():
    world = ClipWorld(SMALL)
    shots = world.few_shot(4)
    pairs = Counter((s.domain, s.label) for s in shots)
    assert set(pairs.values()) == {4} and len(pairs) == 6
    assert all(s.split == "train" for s in shots)
    assert [s.index for s in shots] == [s.index for s in world.few_shot(4)]
    assert [s.index for s in shots] != [s.index for s in world.few_shot(4, seed=1)]
    assert {s.domain for s in world.few_shot(2, domains=["sketch"])} == {"sketch"}
    with pytest.raises(ValueError, match="k must be"):
        world.few_shot(11)
    batches = balanced_batches([s for s in shots if s.label != "car" or s.domain == "photo"], 8)
    for _ in range(5):  # sketch has fewer samples here but still fills half of each batch
        assert Counter(s.domain for s in next(batches)) == {"photo": 4, "sketch": 4}


def test_committed_fixture_loads_and_classifies_every_domain_zero_shot():
    world = load_clip_world()
    data = json.loads((FIXTURE / "clip_world.json").read_text())
    assert len(world.classes) >= 10 and len(world.domains) >= 3
    assert min(data["clip_domains"].values()) >= 0.8  # as measured on all unseen images
    fam = load(world.model_dir)
    assert fam.family == "clip"
    accuracy = zero_shot_accuracy(fam, world, per_pair=6)
    assert set(accuracy) == set(world.domains)
    assert min(accuracy.values()) >= 0.8, accuracy
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size <= 5 * 2**20, size


def test_a_tiny_build_writes_a_folder_the_loader_opens(tmp_path):
    spec = ClipWorldSpec(seed=3, classes=SMALL.classes, domains=SMALL.domains, n_train=4,
                         n_unseen=2)  # fmt: skip
    ticks = []
    result = build_clip_world(tmp_path, seed=3, progress=lambda *a: ticks.append(a), spec=spec,
                              steps=3)  # fmt: skip
    assert set(result["clip_domains"]) == {"photo", "sketch"}
    assert all(0.0 <= v <= 1.0 for v in result["clip_domains"].values())
    assert {t[0] for t in ticks} >= {"draw", "train", "evaluate"}
    world = load_clip_world(tmp_path)
    assert world.spec == spec and world.accuracy == result["clip_domains"]
    assert world.train["steps"] == 3
    fam = load(tmp_path / "clip")
    probs = fam.classify([world.image("photo", "car", "unseen", 0)], list(world.classes))
    assert probs.shape == (1, 3)
    with pytest.raises(ValueError, match="seed 0 differs"):
        build_clip_world(tmp_path / "other", seed=0, spec=spec, steps=1)


def test_loading_a_broken_world_file_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="clip_world.json"):
        load_clip_world(tmp_path)
    file = tmp_path / "clip_world.json"
    file.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_clip_world(tmp_path)
    file.write_text(json.dumps({"format": 1, "seed": 0, "classes": ["car"]}))
    with pytest.raises(ValueError, match="missing"):
        load_clip_world(file)
    data = ClipWorld().to_json()
    file.write_text(json.dumps({**data, "domains": ["photo", "oil"]}))
    with pytest.raises(ValueError, match="domains"):
        load_clip_world(file)
    file.write_text(json.dumps(data))
    assert load_clip_world(tmp_path).model_dir is None
