"""`unlearnd world build` end to end on the tiny size, and a tiny Qwen2-VL on the same data."""

import json

import pytest
import typer
from typer.testing import CliRunner

from unlearnd.cli import world_cmds
from unlearnd.models import load
from unlearnd.world import load_world
from unlearnd.world.dataset import World, WorldSpec, vocabulary
from unlearnd.world.train import lr_factor, train_briefly


def _app() -> typer.Typer:
    app = typer.Typer()
    world_cmds.register(app)

    @app.callback()
    def _root() -> None:  # a group, so "world build" is a sub-command as in unlearnd's CLI
        pass

    return app


@pytest.mark.slow
def test_world_build_json_writes_a_folder_the_loader_opens(tmp_path):
    out = tmp_path / "w"
    result = CliRunner().invoke(
        _app(),
        [
            "world",
            "build",
            "--out",
            str(out),
            "--size",
            "tiny",
            "--seed",
            "1",
            "--threads",
            "1",
            "--no-clip",
            "--json",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    for key in ("seen_qa", "unseen_qa", "textual_qa", "general"):
        assert 0.0 <= figures[key] <= 1.0
    assert figures["n_people"] == 8 and figures["seed"] == 1
    world = load_world(out)
    assert len(world.people) == 8 and world.model_dir == out / "vlm"
    fam = load(out / "vlm")
    answer = fam.generate([world.samples("textual_qa", [0])[0]], max_new_tokens=3)
    assert isinstance(answer[0], str)
    # A second build must not overwrite the first.
    again = CliRunner().invoke(_app(), ["world", "build", "--out", str(out), "--size", "tiny"])
    assert again.exit_code != 0 and "not empty" in again.output


def test_world_build_rejects_an_unknown_size(tmp_path):
    result = CliRunner().invoke(_app(), ["world", "build", "--out", str(tmp_path / "x"),
                                         "--size", "huge"])  # fmt: skip
    assert result.exit_code == 2 and "--size" in result.output


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and max(factors) == pytest.approx(1.0)
    assert factors[-1] < 0.1 and factors[50] > factors[90]


@pytest.mark.slow
def test_tiny_qwen2_vl_learns_the_world():
    from unlearnd.models.tiny import tiny
    from unlearnd.models.tokenizer import build_word_tokenizer

    world = World(WorldSpec(n_people=6, n_train_scenes=30, n_eval_scenes=3))
    fam = tiny("qwen2_vl", tokenizer=build_word_tokenizer(vocabulary(world)))
    losses = train_briefly(fam, world, steps=40, batch=8, lr=3e-3)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
