"""A world from an image tree (`unlearnd world build --images`), on a generated tree of
PACS's layout: the split, the errors, the build through the CLI, the request bundles."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from image_tree import CLASSES, DOMAINS, make_tree
from typer.testing import CliRunner

from unlearnd.cli.main import app
from unlearnd.daemon.schema import parse_request
from unlearnd.models import load
from unlearnd.world import image_world
from unlearnd.world.image_requests import (
    REFUSER_IMAGE_PARAMS,
    load_image_world,
    names_a_class,
    write_concept_bundle,
    write_domain_bundle,
)
from unlearnd.world.image_tree import ImageTree, ImageTreeError


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    tree = make_tree(root / "tree")
    out = root / "world"
    result = CliRunner().invoke(
        app,
        ["world", "build", "--images", str(tree), "--out", str(out), "--size", "tiny",
         "--threads", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # No terminal here: progress comes as plain lines, each stage to its end.
    assert "clip: 30/30" in result.stderr and "vlm: 30/30" in result.stderr, result.stderr
    return tree, out, json.loads(result.stdout)


def test_split_is_a_function_of_the_path_alone(tmp_path):
    a = ImageTree(make_tree(tmp_path / "a", per_pair=40))
    b = ImageTree(make_tree(tmp_path / "b", per_pair=40, seed=7))  # other pixels, same names
    assert [(i.key, i.split) for i in a.images] == [(i.key, i.split) for i in b.images]
    unseen = len(a.items("unseen")) / len(a.images)
    assert 0.08 < unseen < 0.25, unseen
    assert a.domains == DOMAINS and a.classes == CLASSES
    assert {i.label for i in a.items("train", classes=["tent"])} == {"tent"}
    with pytest.raises(ValueError, match="unknown class"):
        a.items(classes=["giraffe"])


def test_bad_trees_say_what_is_wrong(tmp_path):
    with pytest.raises(ImageTreeError, match="not found"):
        ImageTree(tmp_path / "missing")
    (tmp_path / "flat" / "photo" / "dog").mkdir(parents=True)
    with pytest.raises(ImageTreeError, match="at least two classes"):
        ImageTree(tmp_path / "flat")
    tree = make_tree(tmp_path / "t", per_pair=2)
    (tree / "photo" / "box" / "0.png").write_bytes(b"not an image")
    from unlearnd.world.image_tree import open_images

    with pytest.raises(ImageTreeError, match="cannot read image"):
        open_images(ImageTree(tree).items(classes=["box"], domains=["photo"]))


def test_build_writes_loadable_models_figures_and_pools(built):
    tree, out, figures = built
    for key in ("vlm_class_acc", "vlm_domain_acc", "clip_class_acc", "vlm_paraphrase_acc"):
        assert set(figures[key]) == set(DOMAINS), key
        assert all(0.0 <= v <= 1.0 for v in figures[key].values())
    assert figures["split"]["unseen"] and figures["images"] == 72
    vlm, clip = load(out / "vlm"), load(out / "clip")
    assert (vlm.family, clip.family) == ("llava", "clip")
    answers = vlm.generate(load_image_world(out).class_samples(ImageTree(tree).images[:2]))
    assert len(answers) == 2
    record = json.loads((out / "image_world.json").read_text())
    assert record["root"] == str(tree.resolve()) and record["classes"] == list(CLASSES)
    for pool in ("retain", "general", "clip_retain"):
        rows = [json.loads(x) for x in (out / "pools" / f"{pool}.jsonl").read_text().splitlines()]
        t = ImageTree(tree)
        per_pair = [min(12, len(t.items("train", [d], [c]))) for d in DOMAINS for c in CLASSES]
        assert len(rows) == sum(per_pair)
        assert all((out / "pools" / r["image"]).is_file() for r in rows)  # absolute paths
    info = CliRunner().invoke(app, ["model", "info", str(out / "vlm"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["family"] == "llava"


def test_the_vlm_vision_tower_starts_from_the_clip(built, tmp_path):
    tree, out, _ = built
    clip = load(out / "clip")
    config = image_world.SIZES["tiny"]
    vlm = image_world.train_vlm(
        clip,
        ImageTree(tree),
        torch.zeros(1, 3, config.image_size, config.image_size),
        ([0], [0]),
        config.__class__(**{**config.__dict__, "vlm": config.vlm.__class__(steps=0)}),
        0,
        None,
        "cpu",
    )
    theirs = clip.model.vision_model.state_dict()
    ours = vlm.vision_tower().state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in theirs)


def test_request_bundles_are_valid_requests(built, tmp_path):
    tree, out, _ = built
    world = load_image_world(out)
    concept = write_concept_bundle(world, "tent", ["photo"], tmp_path / "c", n=5, method="ga")
    doc = parse_request(json.loads((concept / "request.json").read_text()))
    assert doc.kind == "concept" and doc.method == "ga" and len(doc.forget) == 5
    assert all((concept / s.image).is_file() and s.answer == "tent" for s in doc.forget)
    assert doc.params == {}  # GA's own defaults: the refuser's params are not carried over
    refuser = write_concept_bundle(world, "tent", ["photo"], tmp_path / "r", n=2)
    doc = parse_request(json.loads((refuser / "request.json").read_text()))
    assert doc.method is None and doc.params == {}  # as a user sends it: the deployment's defaults
    domain = write_domain_bundle(world, "sketch", tmp_path / "d", per_class=2)
    doc = parse_request(json.loads((domain / "request.json").read_text()))
    assert doc.kind == "domain" and {s.question for s in doc.forget} == {"sketch"}
    assert sorted({s.answer for s in doc.forget}) == list(CLASSES)


def test_a_moved_tree_is_found_again_and_a_different_one_refused(built, tmp_path):
    tree, out, _ = built
    moved = shutil.copytree(tree, tmp_path / "moved")
    assert load_image_world(out, images=moved).tree.root == moved.resolve()
    shutil.rmtree(moved / "sketch")
    with pytest.raises(ValueError, match="not the one"):
        load_image_world(out, images=moved)


def test_a_refusal_names_no_class():
    words = ["dog", "art painting", "guitar"]
    assert names_a_class("dog", words) and names_a_class("it is a guitar .", words)
    assert not names_a_class("i cannot help with that .", words)
    assert not names_a_class("dogma", words)


def test_a_concept_request_with_real_images_goes_through_the_daemon(built, tmp_path):
    from local_daemon import LocalDaemon

    from unlearnd.config import ModelSettings, Settings

    _, out, _ = built
    world = load_image_world(out)
    pools = out / "pools"
    model = ModelSettings(path=str(out / "vlm"), eval_samples=8,
                          retain_pool=str(pools / "retain.jsonl"),
                          general_pool=str(pools / "general.jsonl"))  # fmt: skip
    daemon = LocalDaemon(Settings(workdir=tmp_path / "w", model=model))
    base = daemon.store.get_alias("live")
    open_gate = {
        "max_forget_accuracy": 1.0,
        "min_retain_ratio": 0.0,
        "min_general_ratio": 0.0,
        "max_hallucinated": 1.0,
        "max_degenerate": 1.0,
    }  # GA names other classes
    request_id = daemon.submit(
        write_concept_bundle(
            world, "tent", ["photo"], tmp_path / "tent", n=6, method="ga",
            params={"steps": 8, "lr": 5e-2, "batch_size": 6}, gate=open_gate,
        )
    )  # fmt: skip
    assert daemon.store.get_request(request_id).state == "committed"
    live = daemon.store.get_alias("live")
    assert live != base and daemon.store.get_version(live).method == "ga"

    probe = world.class_samples(world.tree.items("train", ["photo"], ["tent"])[:6])
    before = daemon.version(base).fam.answer_logprobs(probe)[0]
    after = daemon.version().fam.answer_logprobs(probe)[0]
    assert after.sum() < before.sum() - 1.0  # gradient ascent made "tent" less likely


def test_a_concept_request_drops_its_own_class_from_the_kept_pool():
    from unlearnd.daemon.job import without_concept
    from unlearnd.models import Sample

    pool = [Sample("what is shown ?", a) for a in ("tent", "Box", "ball", "a tent")]
    forget = [Sample("what is shown ?", "tent")]
    assert [s.answer for s in without_concept(pool, "concept", forget)] == ["Box", "ball"]
    assert without_concept(pool, "entity", forget) == pool  # a person's city is kept by others


def test_init_on_the_built_models_finds_their_pools(built, tmp_path, monkeypatch):
    from unlearnd.config import load_settings

    _, out, _ = built
    for model, pools, visual_vector in (
        ("vlm", {"retain.jsonl", "general.jsonl"}, "answer_distribution"),  # a class in many styles
        ("clip", {"clip_retain.jsonl"}, "vision_tower"),
    ):
        folder = tmp_path / model
        folder.mkdir()
        monkeypatch.chdir(folder)
        result = CliRunner().invoke(app, ["init", "--model", str(out / model)])
        assert result.exit_code == 0, result.output
        settings = load_settings(folder / "unlearnd.toml", environ={})
        named = {settings.model.retain_pool, settings.model.general_pool} - {""}
        assert {p.rsplit("/", 1)[-1] for p in named} == pools
        assert settings.routing.visual_vector == visual_vector
        if model == "vlm":  # the world's refuser defaults reach the deployment's config
            assert settings.methods["refuser"] == REFUSER_IMAGE_PARAMS


def test_a_newcomer_builds_inits_serves_and_submits(built, tmp_path, monkeypatch):
    """The path in docs/world.md: world build --images, init, world request, submit, serve."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, out, _ = built
    folder = tmp_path / "deployment"
    folder.mkdir()
    monkeypatch.chdir(folder)
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--model", str(out / "vlm")]).exit_code == 0
    made = runner.invoke(
        app,
        ["world", "request", "--world", str(out), "--forget-class", "tent", "--domains", "photo",
         "--n", "4", "--out", "tent", "--json"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "request.json" in json.loads(made.stdout)["files"]
    doc = json.loads((folder / "tent" / "request.json").read_text())
    doc["params"] = {"steps": 10}  # the default method (refuser), briefly
    (folder / "tent" / "request.json").write_text(json.dumps(doc))
    assert runner.invoke(app, ["submit", "tent"]).exit_code == 0

    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLEARND_")}
    env.update(UNLEARND_DAEMON__STABLE_CHECKS="1", UNLEARND_DAEMON__RESCAN_INTERVAL_S="0.3",
               OMP_NUM_THREADS="1")  # fmt: skip
    serve = subprocess.Popen(
        [sys.executable, "-m", "unlearnd.cli.main", "serve"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            listed = json.loads(runner.invoke(app, ["requests", "--json"]).stdout or "[]")
            if listed and listed[0]["state"] in ("committed", "gated", "failed"):
                break
            time.sleep(1)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    assert listed[0]["state"] in ("committed", "gated"), listed  # processed, whatever the gate
    versions = json.loads(runner.invoke(app, ["versions", "--json"]).stdout)
    assert len(versions) == 2


def test_world_request_names_what_is_wrong(built, tmp_path):
    _, out, _ = built
    runner = CliRunner()
    unknown = runner.invoke(app, ["world", "request", "--world", str(out), "--forget-class",
                                  "giraffe", "--out", str(tmp_path / "b")])  # fmt: skip
    assert unknown.exit_code == 1 and "unknown class" in unknown.output
    assert not (tmp_path / "b").exists()
    both = runner.invoke(app, ["world", "request", "--world", str(out), "--out",
                               str(tmp_path / "b")])  # fmt: skip
    assert both.exit_code == 2 and "one of --forget-class or --forget-domain" in both.output
    missing = runner.invoke(app, ["world", "request", "--world", str(tmp_path), "--forget-domain",
                                  "sketch", "--out", str(tmp_path / "b")])  # fmt: skip
    assert missing.exit_code == 1 and "image_world.json" in missing.output
