"""Every operation of the model interface on a tiny model of each family, offline."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unlearnd.cli.main import app
from unlearnd.models import (
    ModelLoadError,
    Sample,
    UnsupportedOperation,
    detect_family,
    load,
    resolve_device,
    tiny,
)

RED = Image.new("RGB", (48, 48), (200, 20, 20))
GREEN = Image.new("RGB", (48, 48), (20, 200, 20))
BATCH = [
    Sample("where does this person live ?", "red", RED),
    Sample("what is this ?", "a red cat", None),  # text-only, mixed into the same batch
    Sample("who is this ?", "the blue dog", GREEN),
]
GENERATIVE = ("llava", "qwen2_vl")


@pytest.fixture(scope="module", params=["llava", "qwen2_vl", "clip"])
def saved(request, tmp_path_factory):
    fam = tiny(request.param, seed=1)
    folder = tmp_path_factory.mktemp(request.param)
    fam.save(folder)
    return fam, folder


@pytest.fixture(scope="module", params=GENERATIVE)
def gen(request):
    return tiny(request.param, seed=2)


def test_features_have_one_row_per_input(saved):
    fam, _ = saved
    v = fam.vision_features([RED, GREEN])
    t = fam.text_embedding(["where does this person live", "a cat"])
    assert v.shape[0] == 2 and t.shape[0] == 2
    assert torch.isfinite(v).all() and torch.isfinite(t).all()
    assert not torch.allclose(v[0], v[1])  # different images, different features


def test_answer_mask_covers_exactly_the_answer_tokens(gen):
    logp, mask = gen.answer_logprobs(BATCH)
    tok = gen.tokenizer
    expected = [len(tok(" " + s.answer, add_special_tokens=False).input_ids) + 1 for s in BATCH]
    assert mask.sum(1).tolist() == expected  # answer words + EOS, nothing of the prompt
    assert (logp[mask == 0] == 0).all() and (logp[mask == 1] < 0).all()
    logits, mask2 = gen.answer_logits(BATCH)
    assert logits.shape[:2] == mask2.shape and logits.shape[-1] == len(tok)


def test_loss_has_gradient_and_training_lowers_it(gen):
    params = [p for p in gen.model.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    first = None
    for _ in range(15):
        loss = gen.answer_loss(BATCH)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        opt.step()
    assert float(gen.answer_loss(BATCH)) < first * 0.5
    gen.model.eval()


def test_batched_generation_equals_one_by_one(gen):
    together = gen.generate(BATCH, max_new_tokens=5)
    alone = [gen.generate([s], max_new_tokens=5)[0] for s in BATCH]
    assert together == alone
    assert all(isinstance(t, str) for t in together)


def test_generation_stops_at_eos(gen):
    # Teach one answer, then the model must stop right after it instead of running on.
    sample = Sample("what is this ?", "red cat", RED)
    opt = torch.optim.AdamW(gen.model.parameters(), lr=3e-3)
    for _ in range(40):
        loss = gen.answer_loss([sample])
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen.model.eval()
    assert gen.generate([sample], max_new_tokens=8) == ["red cat"]


def test_attention_to_visual_tokens(gen):
    att = gen.text_to_visual_attention([BATCH[0], BATCH[2]])
    n_visual = int(
        (gen.encode([BATCH[0]], with_answer=False).input_ids == gen.image_token_id).sum()
    )
    assert att.shape == (2, n_visual)
    assert (att >= 0).all() and torch.isfinite(att).all()
    with pytest.raises(ValueError, match="needs an image"):
        gen.text_to_visual_attention([BATCH[1]])


def test_module_paths_resolve_to_the_modules(saved):
    fam, _ = saved
    assert fam.model.get_submodule(fam.projector_path()) is fam.projector()
    assert [fam.model.get_submodule(p) for p in fam.ffn_paths()] == fam.ffn_modules()
    assert len(fam.ffn_modules()) >= 2


def test_save_load_round_trip_is_exact(saved):
    fam, folder = saved
    again = load(folder, device="cpu")
    assert type(again) is type(fam) and again.family == detect_family(folder)
    assert again.fingerprint() == fam.fingerprint()
    assert torch.allclose(again.vision_features([RED]), fam.vision_features([RED]), atol=1e-5)
    if fam.family in GENERATIVE:
        a, _ = again.answer_logits(BATCH)
        b, _ = fam.answer_logits(BATCH)
        assert torch.allclose(a, b, atol=1e-4)


def test_clip_classifies_and_refuses_text_generation():
    clip = tiny("clip")
    probs = clip.classify([RED, GREEN], ["cat", "dog", "red"])
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    with pytest.raises(UnsupportedOperation, match="does not answer"):
        clip.generate(BATCH)


def test_fingerprint_changes_with_weights_and_survives_bf16():
    fam = tiny("llava", seed=3)
    before = fam.fingerprint()
    with torch.no_grad():
        fam.projector().linear_1.bias.add_(1.0)
    assert fam.fingerprint() != before
    fam.model.to(torch.bfloat16)
    assert len(fam.fingerprint()) == 64


def test_device_choice():
    assert resolve_device("cpu", "auto") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bfloat16")[1] == torch.bfloat16
    if not torch.cuda.is_available():
        assert resolve_device("auto", "auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load(tmp_path / "absent")
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match="'gpt2' model; supported: llava, qwen2_vl, clip"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ModelLoadError, match="cannot load the llava model"):
        load(tmp_path)  # a config but no weights


def test_model_info_cli(saved, tmp_path):
    fam, folder = saved
    runner = CliRunner()
    out = runner.invoke(app, ["model", "info", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["family"] == fam.family and data["dtype"] == "float32"
    assert data["parameters"]["total"] == sum(p.numel() for p in fam.model.parameters())
    assert data["ffn"]["blocks"] == len(fam.ffn_paths())
    table = runner.invoke(app, ["model", "info", str(folder)])
    assert table.exit_code == 0 and "parameters.total" in table.output


def test_model_info_cli_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["model", "info", str(tmp_path / "nope")])
    assert missing.exit_code == 4 and "not found" in missing.output
    (tmp_path / "notes.txt").write_text("not a model")
    foreign = runner.invoke(app, ["model", "info", str(tmp_path)])
    assert foreign.exit_code == 1 and "no config.json" in foreign.output
