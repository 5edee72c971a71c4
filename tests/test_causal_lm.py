"""The causal_lm family on tiny random-weight Llama folders: detection, loading, training a
refuser expert, and a text-only request through intake and the worker to a version; a request
or pool with images is refused with the reason; text-only pools on a llava deployment."""

from __future__ import annotations

import json

import pytest
import torch
from facts import write_pool
from local_daemon import LocalDaemon
from PIL import Image

from unlearnd.config import ModelSettings, Settings
from unlearnd.daemon.job import RequestMismatch, check_fits
from unlearnd.methods import METHODS, get_method
from unlearnd.models import ModelLoadError, Sample, detect_family, load, tiny
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.serving import Deployment

WORDS = (
    "who is ada byron where does she live ada lives in paris rome what colour is the sky "
    "blue tell me about london bob smith works as a baker I can't share that"
).split()


def tiny_lm(folder, **sizes):
    tiny("causal_lm", tokenizer=build_word_tokenizer(WORDS), **sizes).save(folder)
    return folder


def test_a_causal_lm_folder_is_detected_by_its_architecture_and_round_trips(tmp_path):
    fam = tiny("causal_lm", tokenizer=build_word_tokenizer(WORDS))
    fam.save(tmp_path / "lm")
    assert detect_family(tmp_path / "lm") == "causal_lm"
    again = load(tmp_path / "lm", device="cpu", dtype="float32")
    batch = [Sample("where does ada byron live ?", "paris"), Sample("what colour is the sky ?",
                                                                    "blue")]  # fmt: skip
    assert again.family == "causal_lm"
    assert torch.allclose(again.answer_loss(batch), fam.answer_loss(batch))
    # Left- and right-padded batches give the same answer logits (positions from the mask).
    left = again.answer_distribution(batch)
    alone = torch.cat([again.answer_distribution([s]) for s in batch])
    assert torch.allclose(left, alone, atol=1e-5)
    info = again.info()
    assert info["family"] == "causal_lm" and info["parameters"]["total"] > 0
    assert "vision" not in info


def test_a_folder_of_no_supported_kind_is_named(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(
        {"model_type": "bert", "architectures": ["BertForMaskedLM"]}))  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"'bert' model; supported: .*ForCausalLM"):
        detect_family(tmp_path / "m")


def test_every_method_without_images_supports_causal_lm_and_the_others_say_why():
    text_methods = {"refuser", "ga", "graddiff", "kl", "npo", "reject", "pubg"}
    supported = {name for name in METHODS if "causal_lm" in get_method(name).families}
    assert supported == text_methods
    with pytest.raises(RequestMismatch, match="supports llava, qwen2_vl, not"):
        check_fits("entity", get_method("vl_eraser"), "causal_lm")
    with pytest.raises(RequestMismatch, match="takes text only: leave `image` out"):
        check_fits("entity", get_method("refuser"), "causal_lm", images=True)


def test_an_image_in_a_causal_lm_prompt_is_refused():
    fam = tiny("causal_lm", tokenizer=build_word_tokenizer(WORDS))
    with pytest.raises(NotImplementedError, match="takes text only"):
        fam.generate([Sample("what is this ?", "", Image.new("RGB", (8, 8)))])


RETAIN = [Sample("where does bob smith live ?", "bob smith lives in rome"),
          Sample("what colour is the sky ?", "blue"),
          Sample("who is bob smith ?", "bob smith works as a baker"),
          Sample("tell me about london", "london is in rome")] * 3  # fmt: skip


def text_request(folder, image: bool = False):
    folder.mkdir(parents=True)
    forget = [{"question": q, "answer": "ada byron lives in paris"} for q in
              ("where does ada byron live ?", "where does ada live ?",
               "tell me about ada byron", "where is ada byron ?")]  # fmt: skip
    if image:
        Image.new("RGB", (16, 16)).save(folder / "a.png")
        forget[0]["image"] = "a.png"
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Ada Byron"},
           "forget": forget, "params": {"steps": 4}}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def lm_deployment(tmp_path) -> Settings:
    model = tiny_lm(tmp_path / "lm", text_layers=1)
    pool = str(write_pool(tmp_path / "pool", RETAIN))
    return Settings(workdir=tmp_path / "w", model=ModelSettings(
        path=str(model), retain_pool=pool, general_pool=pool, eval_samples=6))  # fmt: skip


def test_a_text_only_request_on_a_causal_lm_goes_from_submit_to_a_version(tmp_path):
    daemon = LocalDaemon(lm_deployment(tmp_path))
    request_id = daemon.submit(text_request(tmp_path / "ada"))
    state = daemon.store.get_request(request_id).state
    assert state in ("committed", "gated"), state
    (version,) = [v for v in daemon.store.list_versions() if v.kind == "deletion"]
    assert version.method == "refuser"
    assert version.metrics["forget_n"] >= 1 and "gate" in version.metrics
    # Committed or gated, the version routes a question naming the target to its expert.
    served = daemon.version(version.id)
    (betas,) = served.routes([Sample("where does ada byron live ?", "")])
    assert betas, "the text door did not turn the expert on"


def test_a_request_with_an_image_is_rejected_at_intake_on_a_causal_lm(tmp_path):
    daemon = LocalDaemon(lm_deployment(tmp_path))
    with pytest.raises(RuntimeError, match="did not accept"):
        daemon.submit(text_request(tmp_path / "ada", image=True))
    report = daemon.intake.inbox.dir("failed") / "ada.error.json"
    (error,) = json.loads(report.read_text())["errors"]
    assert "takes text only" in error["message"]


def test_a_pool_with_images_is_a_problem_of_a_causal_lm_deployment(tmp_path):
    model = tiny_lm(tmp_path / "lm", text_layers=1)
    rows = [Sample(s.question, s.answer, Image.new("RGB", (8, 8))) for s in RETAIN]
    pool = str(write_pool(tmp_path / "pool", rows))
    settings = Settings(model=ModelSettings(path=str(model), retain_pool=pool, eval_samples=4))
    (problem,) = Deployment(settings).pool_problems()
    assert "retain_pool" in problem and "takes text only" in problem


def test_text_only_pools_centre_a_llava_deployment_without_images(tmp_path):
    model = tmp_path / "llava"
    tiny("llava", tokenizer=build_word_tokenizer(WORDS), vision_layers=1, text_layers=1).save(model)
    pool = str(write_pool(tmp_path / "pool", RETAIN))
    deployment = Deployment(Settings(model=ModelSettings(path=str(model), retain_pool=pool,
                                                         eval_samples=6)))  # fmt: skip
    centers = deployment.centers(deployment.load_base())
    assert centers.visual is None and centers.textual.ndim == 1
    with pytest.raises(ValueError, match="no images to centre the image door on"):
        centers.unit(centers.textual, "visual")


def test_init_serves_a_causal_lm_with_text_only_pools_and_registers_the_base(tmp_path):
    from typer.testing import CliRunner

    from unlearnd.cli.main import app

    model = tiny_lm(tmp_path / "lm", text_layers=1)
    pool = write_pool(tmp_path / "pools", RETAIN)  # text rows: no image key
    runner = CliRunner()
    out = runner.invoke(app, ["init", "--model", str(model), "--retain-pool", str(pool),
                              "--eval-samples", "4", "--json"], catch_exceptions=False)  # fmt: skip
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["family"] == "causal_lm" and shown["version"] == 1
    # Before any `serve`, answers name the live version: the base.
    said = runner.invoke(app, ["generate", "-p", "where does ada byron live ?", "--json"])
    assert said.exit_code == 0, said.output
    assert json.loads(said.stdout)["version"] == 1


def test_a_causal_lm_becomes_the_language_model_of_a_llava_folder(tmp_path):
    from unlearnd.models.gguf_folder import llava_from

    source = tiny("causal_lm", tokenizer=build_word_tokenizer(WORDS))
    llava_from(source.model, source.tokenizer, tmp_path / "llava")
    fam = load(tmp_path / "llava", device="cpu", dtype="float32")
    assert fam.family == "llava"
    copied = fam.model.model.language_model.state_dict()
    for name, tensor in source.model.model.state_dict().items():
        assert torch.equal(copied[name], tensor), name
    image = Image.new("RGB", (32, 32), (200, 60, 40))
    (said,) = fam.generate([Sample("where does ada byron live ?", "", image)], 3)
    assert isinstance(said, str)
    assert "<image>" in fam.prompt_text(Sample("who is this ?", "", image))
