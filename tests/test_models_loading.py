"""Loading model folders, `unlearnd model info`, the word tokenizer, device choice, fingerprints."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM
from typer.testing import CliRunner

from unlearnd.cli.common import EXIT_ERROR, EXIT_NOT_FOUND
from unlearnd.cli.main import app
from unlearnd.models import ModelLoadError, detect_family, load, resolve_device, tiny
from unlearnd.models.tokenizer import build_word_tokenizer

torch.set_num_threads(1)  # the machine's cores are shared

SMALL = dict(vision_layers=1, text_layers=1)


@pytest.fixture(scope="module", params=["llava", "qwen2_vl", "clip"])
def saved(request, tmp_path_factory):
    fam = tiny(request.param, **SMALL)
    folder = tmp_path_factory.mktemp(request.param)
    fam.save(folder)
    return fam, folder


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A real Hugging Face folder of a model family unlearnd does not serve (a tiny BERT: an
    encoder, not a *ForCausalLM)."""
    folder = tmp_path_factory.mktemp("bert")
    config = BertConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                        num_hidden_layers=1, num_attention_heads=2)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_family_comes_from_config(saved):
    fam, folder = saved
    assert detect_family(folder) == fam.family
    with pytest.raises(ModelLoadError, match=f"holds a {fam.family} model, not"):
        load(folder, family="llava" if fam.family != "llava" else "clip")
    with pytest.raises(ModelLoadError, match="unknown family 'gpt'"):
        load(folder, family="gpt")


def test_load_errors_are_clear(tmp_path, foreign):
    with pytest.raises(ModelLoadError, match="not found"):
        load(tmp_path / "absent")
    with pytest.raises(ModelLoadError, match="is empty"):
        load(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(tmp_path)
    supported = "'bert' model; supported: llava, qwen2_vl, clip, any .*ForCausalLM"
    with pytest.raises(ModelLoadError, match=supported):
        load(foreign)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ModelLoadError, match="cannot load the llava model"):
        load(tmp_path)  # a config but no weights


def test_broken_weights_are_a_load_error(saved, tmp_path):
    fam, folder = saved
    for item in folder.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(ModelLoadError, match=f"cannot load the {fam.family} model"):
        load(tmp_path)


def test_model_info_cli(saved):
    fam, folder = saved
    runner = CliRunner()
    out = runner.invoke(app, ["model", "info", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["family"] == fam.family and data["dtype"] == "float32"
    assert data["device"] == "cpu" and data["path"] == str(folder.resolve())
    params = data["parameters"]
    assert params["total"] == sum(p.numel() for p in fam.model.parameters())
    assert params["projector"] == sum(p.numel() for p in fam.projector().parameters())
    assert params["vision"] > 0 and params["language"] > 0
    assert data["ffn"]["blocks"] == len(fam.ffn_paths()) == 1
    assert data["projector"] == {n: list(p.shape) for n, p in fam.projector().named_parameters()}
    assert data["vision"]["patch_size"] == 8
    table = runner.invoke(app, ["model", "info", str(folder)])
    assert table.exit_code == 0 and "parameters.total" in table.output
    assert f"{params['total']:,}" in table.output
    first_ffn_shape = next(iter(data["ffn"]["per_block"].values()))
    assert " x ".join(map(str, first_ffn_shape)) in table.output


def test_model_info_cli_errors(tmp_path, foreign):
    runner = CliRunner()
    missing = runner.invoke(app, ["model", "info", str(tmp_path / "nope")])
    assert missing.exit_code == EXIT_NOT_FOUND and "not found" in missing.output
    empty = runner.invoke(app, ["model", "info", str(tmp_path)])
    assert empty.exit_code == EXIT_ERROR and "is empty" in empty.output
    (tmp_path / "notes.txt").write_text("not a model")
    random_files = runner.invoke(app, ["model", "info", str(tmp_path)])
    assert random_files.exit_code == EXIT_ERROR and "no config.json" in random_files.output
    other = runner.invoke(app, ["model", "info", str(foreign)])
    assert other.exit_code == EXIT_ERROR and "'bert' model; supported" in other.output


def test_word_tokenizer():
    tok = build_word_tokenizer(["Paris", "o'neil", "lives in rome."], extra_special=["<ref>"])
    ids = tok("Where does O'Neil live? In Paris, <image> <ref>", add_special_tokens=False)
    pieces = tok.convert_ids_to_tokens(ids.input_ids)
    assert pieces == [
        *("<unk>", "<unk>", "o", "'", "neil", "<unk>", "?", "in", "paris", ","),
        *("<image>", "<ref>"),
    ]
    assert tok.decode(tok("lives in rome .").input_ids) == "lives in rome."
    assert tok.batch_decode([tok("paris , rome").input_ids]) == ["paris, rome"]
    for special in ("<pad>", "<s>", "</s>", "<unk>", "<image>", "<|image_pad|>"):
        assert tok.convert_tokens_to_ids(special) != tok.unk_token_id or special == "<unk>"
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.bos_token == "<s>"
    wrapped = build_word_tokenizer(["paris"], wrap=True)
    assert wrapped.convert_ids_to_tokens(wrapped("paris").input_ids) == ["<s>", "paris", "</s>"]


def test_device_choice():
    assert resolve_device("cpu", "auto") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bfloat16")[1] == torch.bfloat16
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        resolve_device("cpu", "fp8")
    if torch.cuda.is_available():
        assert resolve_device("auto", "auto") == (torch.device("cuda"), torch.bfloat16)
    else:
        assert resolve_device("auto", "auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda:0")


def test_fingerprint_follows_the_weights_in_any_dtype():
    clip = tiny("clip", **SMALL)  # holds a 0-dim parameter (logit_scale)
    assert any(p.ndim == 0 for p in clip.model.state_dict().values())
    before = clip.fingerprint()
    assert before == clip.fingerprint() and len(before) == 64
    with torch.no_grad():
        clip.projector().weight[0, 0] += 1.0
    changed = clip.fingerprint()
    assert changed != before
    clip.model.to(torch.bfloat16)
    assert clip.fingerprint() not in (before, changed) and len(clip.fingerprint()) == 64


def test_tiny_names_what_it_does_not_know():
    with pytest.raises(ValueError, match="unknown family 'gpt2'; supported: llava"):
        tiny("gpt2")
    with pytest.raises(
        ValueError, match=r"unknown size overrides \['hidden'\]; known: .*text_hidden"
    ):
        tiny("llava", hidden=8)
