"""`unlearnd demo --real` end to end, on a tiny random causal LM given with `--folder` (the
command's default, SmolLM2 from the wheel, is what tests/test_real_smollm2.py runs a deletion
on): the folder's pools are answered by the model itself, the request goes through the
service, and every probe is asked before and after (a random model's deletion is gated:
nothing to forget, so nothing to roll back)."""

from __future__ import annotations

import json

from test_causal_lm import tiny_lm
from typer.testing import CliRunner

from unlearnd.cli.main import app
from unlearnd.world import real_demo


def test_demo_real_runs_a_text_deletion_on_a_causal_lm_folder(tmp_path, monkeypatch):
    folder = tiny_lm(tmp_path / "lm", text_layers=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARND_WORKDIR", str(tmp_path / "w"))
    monkeypatch.setenv("UNLEARND_METHODS__REFUSER__STEPS", "2")
    out = CliRunner().invoke(app, ["demo", "--folder", str(folder), "--json", "--timeout-s", "600"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["target"] == "Harry Potter" and shown["state"] in ("committed", "gated")
    asked = [row["question"] for row in shown["answers"]]
    assert asked == [q for _, q in real_demo.PROBES]
    assert {row["door"] for row in shown["doors"]} >= {"forget", "leak_partial", "retain"}
    assert (tmp_path / "w" / "demo-pools" / "retain.jsonl").is_file()
