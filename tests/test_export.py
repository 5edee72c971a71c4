"""A version leaves unlearnd: `unlearnd export` writes a PEFT folder that PEFT loads beside
the user's own base folder (random-weight llava and qwen2_vl saved with save_pretrained) with
the logits unlearnd serves, and a merged model folder with the same logits; two stacked
method versions export as one LoRA; a refuser version leaves as one PEFT folder per expert
and a Router that switches as unlearnd does; what cannot leave is refused with the reason."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
from facts import write_pool
from fastapi.testclient import TestClient
from local_daemon import LocalDaemon
from PIL import Image
from typer.testing import CliRunner

from unlearnd.api import create_app
from unlearnd.cli.main import app
from unlearnd.config import ModelSettings, Settings
from unlearnd.models import Sample, load, tiny
from unlearnd.models.tokenizer import build_word_tokenizer
from unlearnd.serving import Deployment, load_version

WORDS = "who is this person where does live ada byron lives in paris rome".split()
OPEN = {"max_forget_accuracy": 1.0, "min_retain_ratio": 0, "min_general_ratio": 0,
        "max_door_leak": 1.0, "max_hallucinated": 1.0, "max_degenerate": 1.0}  # fmt: skip
QUERY = Sample("Where does this person live ?", "", Image.new("RGB", (32, 32), (200, 60, 40)))


def bundle(folder, method: str, shade: int):
    folder.mkdir(parents=True)
    forget = []
    for i in range(3):
        Image.new("RGB", (32, 32), (shade, 40 + 30 * i, 40)).save(folder / f"f{i}.png")
        forget.append({"image": f"f{i}.png", "question": "Where does this person live ?",
                       "answer": "ada byron lives in paris"})  # fmt: skip
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": "Ada Byron"},
           "forget": forget, "method": method, "params": {"steps": 3}, "gate": OPEN}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(doc))
    return folder


def deployment(family, tmp_path):
    model = tmp_path / "model"
    tiny(family, tokenizer=build_word_tokenizer(WORDS), seed=0, vision_layers=1,
         text_layers=1).save(model)  # fmt: skip
    others = [Sample(QUERY.question, "rome", Image.new("RGB", (32, 32), (0, 90, 9 * i)))
              for i in range(8)]  # fmt: skip
    pool = str(write_pool(tmp_path / "pool", others))
    model_settings = ModelSettings(path=str(model), retain_pool=pool, general_pool=pool,
                                   eval_samples=4)  # fmt: skip
    settings = Settings(workdir=tmp_path / "w", model=model_settings)
    (tmp_path / "unlearnd.toml").write_text(
        f'workdir = "{tmp_path / "w"}"\n[model]\npath = "{model}"\nretain_pool = "{pool}"\n'
    )
    return settings, model


def logits(fam, model=None) -> torch.Tensor:
    enc = fam.encode([QUERY], with_answer=False)
    with torch.no_grad():
        return (model or fam.model)(**fam._inputs(enc)).logits


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_a_stacked_method_version_exports_as_one_peft_folder_and_a_merged_model(family, tmp_path):
    from peft import PeftModel

    settings, model_dir = deployment(family, tmp_path)
    daemon = LocalDaemon(settings)
    daemon.submit(bundle(tmp_path / "r1", "ga", 200))
    daemon.submit(bundle(tmp_path / "r2", "npo", 120))  # stacked on the first
    live = daemon.store.get_alias("live")
    assert daemon.store.get_version(live).method == "npo" and live == 3
    served = load_version(Deployment(settings), daemon.store, live)
    expected = logits(served.fam)
    base = load(model_dir)
    assert not torch.allclose(logits(base), expected, atol=1e-4)  # the versions change it

    runner, config = CliRunner(), ["--config", str(tmp_path / "unlearnd.toml")]
    out = runner.invoke(app, [*config, "export", "live", "--out", str(tmp_path / "peft"),
                              "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    written = json.loads(out.stdout)
    assert written["version"] == live and written["rank"] == 2 * 8  # two adapters, rank 8 each
    assert written["language_model_only"]  # GA and NPO adapt the language blocks
    adapter = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(model_dir.resolve())
    # PEFT, outside unlearnd, on the user's own folder: the same logits.
    peft_model = PeftModel.from_pretrained(load(model_dir).model, tmp_path / "peft")
    torch.testing.assert_close(logits(base, peft_model), expected, atol=1e-5, rtol=1e-4)

    out = runner.invoke(app, [*config, "export", str(live), "--out", str(tmp_path / "merged"),
                              "--format", "merged"])  # fmt: skip
    assert out.exit_code == 0, out.output
    merged = load(tmp_path / "merged")  # an ordinary HF folder, loaded by unlearnd's loader
    torch.testing.assert_close(logits(merged), expected, atol=1e-5, rtol=1e-4)

    again = runner.invoke(app, [*config, "export", "live", "--out", str(tmp_path / "peft")])
    assert again.exit_code == 1 and "not empty" in again.output

    # The same folder over HTTP, as a .tar.gz, for the token's holder only.
    settings.api.token = "secret"
    with TestClient(create_app(settings)) as http:
        assert http.get(f"/versions/{live}/export").status_code == 401
        r = http.get(f"/versions/{live}/export", headers={"Authorization": "Bearer secret"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
        assert http.get("/versions/99/export", headers={"Authorization": "Bearer secret"}
                        ).status_code == 404  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        tf.extractall(tmp_path / "http", filter="data")
    served_again = PeftModel.from_pretrained(
        load(model_dir).model, tmp_path / "http" / f"v{live}-peft"
    )
    torch.testing.assert_close(logits(base, served_again), expected, atol=1e-5, rtol=1e-4)


def half_open(router, question: str, target, retained) -> Image.Image:
    """A blend of a target picture and a retained one on which the image door is half open:
    the continuous gate's beta lies between its threshold and 1 (bisected on the blend)."""
    lo, hi = 0.0, 1.0  # the retained picture's share
    for _ in range(16):
        picture = Image.blend(target, retained, (lo + hi) / 2)
        beta = max(router.betas(question, picture).values(), default=0.0)
        if 0 < beta < 0.99:
            return picture
        lo, hi = ((lo + hi) / 2, hi) if beta else (lo, (lo + hi) / 2)
    raise AssertionError("the image door is never half open between the two pictures")


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_a_refuser_version_leaves_as_expert_folders_and_a_router(family, tmp_path):
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from unlearnd.serving import Router
    from unlearnd.serving.export import export_version

    settings, model_dir = deployment(family, tmp_path)  # the default (continuous) gate
    settings.methods["refuser"] = {"steps": 2}
    daemon = LocalDaemon(settings)
    daemon.submit(bundle(tmp_path / "r1", "refuser", 200))
    live = daemon.store.get_alias("live")
    (expert,) = daemon.store.get_version(live).manifest["experts"]
    written = export_version(Deployment(settings), daemon.store, live, tmp_path / "out")
    assert written["format"] == "routed" and written["experts"] == [expert]

    router = Router(tmp_path / "out")
    served = load_version(Deployment(settings), daemon.store, live)
    targets = [Image.new("RGB", (32, 32), (200, 40 + 30 * i, 40)) for i in range(3)]
    retained = [Image.new("RGB", (32, 32), (0, 90, 9 * i)) for i in range(3)]  # the pool's
    queries = [Sample(QUERY.question, "", p) for p in targets + retained]
    queries += [Sample("Where does Ada Byron live ?", ""), Sample("who is this person ?", "")]
    # The exported switch decides as unlearnd's own, query by query; the image door fires on
    # every picture of the target and on none of the retained ones.
    betas = [router.betas(q.question, q.image) for q in queries]
    assert betas == served.routes(queries)
    assert [bool(b) for b in betas] == [True] * 3 + [False] * 3 + [True, False], betas
    assert router.route("Where does Ada Byron live ?") == expert  # the text door
    # The answer check travels too: an answer naming the target goes back to its expert.
    assert router.check("Ada Byron lives in a tower .") == expert
    assert router.check("a cat sits on a mat .") is None
    # Its scoped tells with it: the forget answer's "paris" tells to a question by surname.
    assert router.check("paris .", "Where does Byron live ?") == expert
    assert router.check("paris .", "Where does John Byron live ?") is None
    assert router.check("paris .") is None

    # A server applying the expert's folder through PEFT at the Router's beta gets the
    # logits unlearnd serves: by name (beta 1) and on the half-open picture, where the
    # continuous gate's beta is below 1 (at scale 1 the logits would differ).
    base = load(model_dir)
    peft_model = PeftModel.from_pretrained(base.model, router.adapter(expert))
    edge = Sample(QUERY.question, "", half_open(router, QUERY.question, targets[0], retained[0]))
    (edge_beta,) = served.routes([edge])
    assert edge_beta == router.betas(edge.question, edge.image) and edge_beta[expert] < 0.99
    for query, beta in ((queries[6], betas[6]), (edge, edge_beta)):
        served.turn(beta)
        enc = served.fam.encode([query], with_answer=False)
        with torch.no_grad():
            expected = served.fam.model(**served.fam._inputs(enc)).logits
        served.turn({})
        for module in peft_model.modules():
            if isinstance(module, LoraLayer):
                module.set_scale("default", beta[expert])
        with torch.no_grad():
            got = peft_model(**base._inputs(base.encode([query], with_answer=False))).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_what_cannot_leave_is_refused_with_the_reason(tmp_path):
    settings, _ = deployment("llava", tmp_path)
    settings.methods["refuser"] = {"steps": 2}
    daemon = LocalDaemon(settings)
    runner, config = CliRunner(), ["--config", str(tmp_path / "unlearnd.toml")]
    base = runner.invoke(app, [*config, "export", "live", "--out", str(tmp_path / "a")])
    assert base.exit_code == 1 and "changes nothing" in base.output
    daemon.submit(bundle(tmp_path / "r1", "refuser", 200))
    routed = runner.invoke(app, [*config, "export", "live", "--out", str(tmp_path / "b"),
                                 "--format", "merged"])  # fmt: skip
    assert routed.exit_code == 1 and "cannot be merged" in routed.output, routed.output
    unknown = runner.invoke(app, [*config, "export", "99", "--out", str(tmp_path / "c")])
    assert unknown.exit_code == 4, unknown.output
    assert not any((tmp_path / name).exists() for name in "bc")


def test_the_worker_reads_the_base_folder_once_and_never_changes_it(tmp_path):
    """One load per process: three jobs (two method versions and a refuser expert) read the
    model folder once; the pristine copy they start from stays bit-identical to the folder."""
    settings, model_dir = deployment("llava", tmp_path)
    settings.methods["refuser"] = {"steps": 2}
    daemon = LocalDaemon(settings)
    for name, method, shade in (("r1", "ga", 200), ("r2", "npo", 120), ("r3", "refuser", 60)):
        daemon.submit(bundle(tmp_path / name, method, shade))
        pristine = daemon.pipeline.deployment._pristine.model.state_dict()
        on_disk = load(model_dir).model.state_dict()
        assert pristine.keys() == on_disk.keys()  # no adapter layer left in it
        assert all(torch.equal(pristine[k], on_disk[k]) for k in on_disk), name
    assert daemon.pipeline.deployment.base_loads == 1
    assert len(daemon.store.list_versions()) == 4  # the base and three committed versions
