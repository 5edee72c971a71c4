"""`unlearnd init` (a config in the current folder that serves a model folder) and batch
inference (`generate --batch`, `classify --batch`) run from that folder without flags."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unlearnd.cli import inference_cmds
from unlearnd.cli.main import app
from unlearnd.world import load_world
from unlearnd.world.clip_world import load_clip_world


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def vlm_project(tmp_path, monkeypatch):
    """A folder initialised for the committed world model; the cwd of the test."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    out = run("init", "--model", str(load_world().model_dir))
    assert out.exit_code == 0, out.output
    return folder


@pytest.fixture(scope="module")
def clip_world():
    return load_clip_world()


def test_init_writes_a_config_that_commands_find_in_the_folder(vlm_project):
    data = tomllib.loads((vlm_project / "unlearnd.toml").read_text())
    assert data["model"] == {"path": str(load_world().model_dir.resolve()), "family": "llava"}
    assert data["workdir"] == "unlearnd-data"  # relative: resolved against the file
    assert set(data) == {"workdir", "model"}  # the rest stays the embedded defaults
    text = (vlm_project / "unlearnd.toml").read_text()
    assert "# [routing]" in text and "# gate = " in text  # ... listed for the reader

    out = run("versions", "--json")  # init registered the base model: version 1, live
    assert out.exit_code == 0, out.output
    (base,) = json.loads(out.stdout)
    assert base["id"] == 1 and base["kind"] == "base"
    assert (vlm_project / "unlearnd-data" / "registry.db").is_file()


def test_init_refuses_to_overwrite_without_force(vlm_project):
    before = (vlm_project / "unlearnd.toml").read_text()
    again = run("init", "--model", str(load_world().model_dir), "--workdir", "elsewhere")
    assert again.exit_code != 0
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert (vlm_project / "unlearnd.toml").read_text() == before
    elsewhere = str(vlm_project / "w2")  # an absolute workdir is kept as given
    forced = run("init", "--model", str(load_world().model_dir), "-w", elsewhere, "--force")
    assert forced.exit_code == 0, forced.output
    assert tomllib.loads((vlm_project / "unlearnd.toml").read_text())["workdir"] == elsewhere


def test_init_writes_pools_absolute_and_refuses_missing_ones(tmp_path):
    (tmp_path / "pools").mkdir()
    rows = [json.dumps({"question": f"what is {i} ?", "answer": str(i)}) for i in range(10)]
    (tmp_path / "pools" / "retain.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "pools" / "empty.jsonl").write_text("")
    model = str(load_world().model_dir)
    missing = run("init", "--model", model, "--general-pool", "pools/none.jsonl")
    assert missing.exit_code == 4 and "pools/none.jsonl" in missing.stderr
    assert not Path("unlearnd.toml").exists()
    # 10 rows, and evaluation takes 48: nothing would be left to train against.
    small = run("init", "--model", model, "--retain-pool", "pools/retain.jsonl")
    assert small.exit_code == 1 and not Path("unlearnd.toml").exists()
    assert "has 10 rows and evaluation takes 48" in small.stderr
    assert "pass --eval-samples (e.g. 5)" in small.stderr
    empty = run("init", "--model", model, "--general-pool", "pools/empty.jsonl")
    assert empty.exit_code == 1 and "has no rows" in empty.stderr
    out = run("init", "--model", model, "--retain-pool", "pools/retain.jsonl",
              "--eval-samples", "5")  # fmt: skip
    assert out.exit_code == 0, out.output
    data = tomllib.loads(Path("unlearnd.toml").read_text())["model"]
    # The daemon reads pools from its cwd, not the file's folder: written absolute.
    assert data["retain_pool"] == str(tmp_path / "pools" / "retain.jsonl")
    assert data["eval_samples"] == 5 and "general_pool" not in data


def test_init_on_a_folder_that_is_not_a_model_fails_clearly(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a model")
    out = run("init", "--model", str(notes))
    assert out.exit_code != 0
    assert "config.json" in out.stderr and str(notes) in out.stderr
    # config.json present but no weights: detected as llava, still not loadable
    (notes / "config.json").write_text(json.dumps({"model_type": "llava"}))
    out = run("init", "--model", str(notes))
    said = " ".join(out.stderr.split())  # the message wraps at the terminal's width
    assert out.exit_code != 0 and "no weights" in said
    assert run("init", "--model", str(tmp_path / "missing")).exit_code == 4
    assert not Path("unlearnd.toml").exists()


def test_generate_batch_equals_single_calls_in_order(vlm_project, monkeypatch):
    world = load_world()
    people = [s for s in world.samples("seen_qa") if s.image is not None]
    a, b = people[1], people[8]
    (vlm_project / "imgs").mkdir()
    a.image.save(vlm_project / "imgs" / "a.png")
    b.image.save(vlm_project / "b.png")
    lines = [
        {"image": "imgs/a.png", "prompt": a.question},  # relative to the file
        {"prompt": "Where does Stostu Gouncroft live ?"},  # text only
        {"image": str(vlm_project / "b.png"), "prompt": b.question},  # absolute
    ]
    # A blank line is skipped but counted: line numbers are the file's.
    body = [json.dumps(lines[0]), "", json.dumps(lines[1]), json.dumps(lines[2])]
    (vlm_project / "q.jsonl").write_text("\n".join(body) + "\n")
    monkeypatch.setattr(inference_cmds, "GENERATE_BATCH", 2)  # two chunks: progress shows

    out = run("generate", "--batch", "q.jsonl", "--json", "--max-new-tokens", "12")
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4]
    assert "generated 2/3" in out.stderr  # progress on stderr only

    for row, line, image in zip(rows, lines, ("imgs/a.png", None, "b.png"), strict=True):
        args = ["generate", "--prompt", line["prompt"], "--json", "--max-new-tokens", "12"]
        single = run(*args, *(["--image", image] if image else []))
        assert single.exit_code == 0, single.output
        expected = json.loads(single.stdout)
        assert row["text"] == expected["text"] and row["text"]
        assert row["routing"] == expected["routing"]
        assert row["prompt"] == line["prompt"] and row["version"] == 1  # the base
    assert rows[0]["text"] != rows[2]["text"]  # two people: answers are per input

    plain = run("generate", "--batch", "q.jsonl", "--max-new-tokens", "12")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines() == [
        f"{r['line']}: {r['text']}  [experts on: none]" for r in rows
    ]


def test_classify_batch_equals_single_calls(clip_world, tmp_path, monkeypatch):
    folder = tmp_path / "clip-project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    out = run("init", "--model", str(clip_world.model_dir), "--workdir", "data", "--json")
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["family"] == "clip" and shown["workdir"] == str(folder / "data")

    picks = [("photo", "car"), ("sketch", "key"), ("photo", "star")]
    names = []
    for i, (domain, cls) in enumerate(picks):
        clip_world.image(domain, cls, "unseen", i).save(folder / f"{cls}.png")
        names.append(f"{cls}.png")
    (folder / "c.jsonl").write_text("".join(json.dumps({"image": n}) + "\n" for n in names))

    out = run("classify", "--batch", "c.jsonl", "--json")
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert [Path(r["image"]).name for r in rows] == names
    for row, name in zip(rows, names, strict=True):
        single = run("classify", "--image", name, "--json")
        assert single.exit_code == 0, single.output
        expected = json.loads(single.stdout)
        assert row["label"] == expected["label"]
        assert row["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-3)
        assert row["routing"]["base_model_only"] is True
    assert len({r["label"] for r in rows}) > 1  # the images are told apart, not one answer


@pytest.mark.parametrize(
    ("line", "message", "code"),
    [
        ('{"image": "a.png", "prompt": ', "not valid JSON", 2),
        ('["a.png"]', "expected a JSON object", 2),
        ('{"image": "a.png", "prompt": "hi", "label": "x"}', "unknown field", 2),
        ('{"image": "a.png"}', "'prompt' must be", 2),
        ('{"image": "gone.png", "prompt": "hi"}', "image not found", 4),
        ('{"image": "q.jsonl", "prompt": "hi"}', "not a readable image", 2),
    ],
)
def test_a_bad_line_fails_before_any_output_naming_its_number(vlm_project, line, message, code):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(vlm_project / "a.png")
    good = json.dumps({"image": "a.png", "prompt": "hi"})
    (vlm_project / "q.jsonl").write_text(f"{good}\n\n{line}\n{good}\n")
    out = run("generate", "--batch", "q.jsonl", "--json")
    assert out.exit_code == code
    assert "q.jsonl:3:" in out.stderr and message in out.stderr
    assert out.stdout == ""


def test_classify_bad_line_and_flag_mistakes(vlm_project):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(vlm_project / "a.png")
    (vlm_project / "c.jsonl").write_text('{"image": "a.png"}\n{"prompt": "no image"}\n')
    out = run("classify", "--batch", "c.jsonl")
    assert out.exit_code == 2 and "c.jsonl:2:" in out.stderr and "prompt" in out.stderr
    assert run("classify", "--batch", "none.jsonl").exit_code == 4
    assert run("classify").exit_code == 2
    assert run("classify", "--batch", "c.jsonl", "--image", "a.png").exit_code == 2
    assert run("generate").exit_code == 2
    both = run("generate", "--batch", "c.jsonl", "--prompt", "hi")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_generate_says_which_model_it_serves(vlm_project, tmp_path, monkeypatch):
    own = run("generate", "-p", "hi", "--max-new-tokens", "2", "--threads", "1")
    assert own.exit_code == 0, own.output
    said = " ".join(own.stderr.split())
    assert f"serving {load_world().model_dir.resolve()} (llava), version 1" in said  # the base
    assert "demo world" not in said
    bare = tmp_path / "bare"  # no unlearnd.toml: the built-in world, said plainly
    bare.mkdir()
    monkeypatch.chdir(bare)
    demo = run("generate", "-p", "hi", "--max-new-tokens", "2")
    said = " ".join(demo.stderr.split())
    assert (
        demo.exit_code == 0
        and "no [model] path (no unlearnd.toml here): serving the built-in demo world" in said
    )
    assert "unlearnd init --model DIR" in said and "(llava), the base model" in said


@pytest.mark.timeout(120)  # the old code served on regardless: a hang is a failure too
@pytest.mark.parametrize("command", [["generate", "-p", "hi"], ["serve"], ["api"]])
def test_a_model_path_that_does_not_load_stops_with_the_reason(tmp_path, command):
    (tmp_path / "unlearnd.toml").write_text('[model]\npath = "no-such-model"\n')
    out = run(*command)
    said = " ".join(out.stderr.split())
    assert out.exit_code == 3, out.output
    assert f"[model] path {tmp_path / 'no-such-model'} does not load" in said
    assert "model folder not found" in said and "demo world" not in said
