"""CAGUL on the tiny llava of facts.py: the base weights never change, forget answers do,
retain images never switch the module on, and the stored artifact re-applies exactly.

facts.py's images are solid colours, so every visual token of an image carries the same
colour: rewriting a few of them cannot outvote the rest, and the tests rewrite all 36
(the world model's portraits are where the k least important tokens matter).
"""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch
from facts import CITIES, FACTS, FORGET, RETAIN, taught_llava, write_pool
from safetensors.torch import load, save

from unlearnd.methods import apply_artifact, artifact_metadata, get_method
from unlearnd.methods.cagul import mean_tokens, visual_tokens
from unlearnd.models import Sample

PARAMS = {"steps": 40, "lr": 3e-2, "k": 36, "batch_size": 2, "reference_answer": "unknown"}


def accuracy(fam, samples):
    answers = fam.generate(samples, max_new_tokens=3)
    return sum(a == s.answer for a, s in zip(answers, samples, strict=True)) / len(samples)


def hashes(fam) -> dict[str, str]:
    return {
        name: hashlib.sha256(
            t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        ).hexdigest()
        for name, t in fam.model.state_dict().items()
    }


def stored(result) -> tuple[dict, dict]:
    """The artifact as the registry keeps it: safetensors bytes plus string metadata."""
    meta = artifact_metadata(result, "cagul")
    return load(save(result.tensors, metadata=meta)), meta


@pytest.fixture(scope="module")
def taught():
    return taught_llava()


@pytest.fixture(scope="module")
def fitted(taught):
    method = get_method("cagul")
    before = hashes(taught)
    fam = copy.deepcopy(taught)
    result = method.fit(fam, FORGET, RETAIN, method.validate_params(PARAMS))
    return before, fam, result


def test_base_weights_stay_bit_identical(taught, fitted):
    before, fam, result = fitted
    assert result.apply == "visual_tokens"
    assert all(not p.requires_grad for p in result.tensors.values())
    assert hashes(fam) == before  # after fit, the module attached
    assert all(p.requires_grad for p in fam.model.parameters())  # flags restored
    fresh = copy.deepcopy(taught)
    tensors, meta = stored(result)
    apply_artifact(fresh, tensors, meta, "v1")
    assert hashes(fresh) == before
    assert fresh.fingerprint() == fam.fingerprint() == taught.fingerprint()


def test_forget_answers_change_retain_holds(taught, fitted):
    _, fam, _ = fitted
    assert accuracy(taught, FORGET) == 1.0
    assert accuracy(fam, FORGET) == 0.0
    assert accuracy(fam, RETAIN) == 1.0


def test_stored_artifact_reapplies_to_the_same_answers(taught, fitted):
    _, fam, result = fitted
    fresh = copy.deepcopy(taught)
    tensors, meta = stored(result)
    apply_artifact(fresh, tensors, meta, "v1")
    assert fresh.generate(FACTS, 3) == fam.generate(FACTS, 3)
    assert torch.equal(fresh.answer_logits(FACTS)[0], fam.answer_logits(FACTS)[0])


def test_discriminator_leaves_retain_images_untouched(taught, fitted):
    _, fam, _ = fitted
    (rewriter,) = visual_tokens.rewriters(fam.projector())
    pooled = mean_tokens(fam, [s.image for s in FACTS])
    fires = (torch.sigmoid(rewriter.disc_logits(pooled)) > rewriter.threshold).tolist()
    assert fires == [True, True, False, False, False, False]
    # Same logits as the base on retain images (text-only questions never reach it either).
    assert torch.equal(fam.answer_logits(RETAIN)[0], taught.answer_logits(RETAIN)[0])
    text_only = [Sample(s.question, s.answer) for s in FACTS]
    assert fam.generate(text_only, 3) == taught.generate(text_only, 3)
    # ...while on forget images it does change them.
    assert not torch.equal(fam.answer_logits(FORGET)[0], taught.answer_logits(FORGET)[0])


def test_two_artifacts_stack(taught):
    """A second CAGUL trained on a model that carries the first: each claims its own
    images, and both stored artifacts on a clean base reproduce the stacked model."""
    method = get_method("cagul")
    params = method.validate_params(PARAMS)
    first = method.fit(copy.deepcopy(taught), FORGET[:1], RETAIN, params)
    stacked = copy.deepcopy(taught)
    apply_artifact(stacked, *stored(first), "a0")
    second = method.fit(stacked, FORGET[1:], RETAIN, params)
    assert len(visual_tokens.rewriters(stacked.projector())) == 2
    assert accuracy(stacked, FORGET) == 0.0 and accuracy(stacked, RETAIN) == 1.0
    clean = copy.deepcopy(taught)
    apply_artifact(clean, *stored(first), "a0")
    apply_artifact(clean, *stored(second), "a1")
    assert clean.generate(FACTS, 3) == stacked.generate(FACTS, 3)
    assert clean.fingerprint() == taught.fingerprint()


def test_a_request_names_it_and_the_daemon_applies_it(taught, tmp_path):
    """Through intake, the worker's real pipeline and the registry, then served from the
    stored artifact on a freshly loaded base."""
    from local_daemon import LocalDaemon
    from test_end_to_end import write_bundle

    from unlearnd.config import ModelSettings, Settings

    taught.save(tmp_path / "model")
    settings = Settings(
        workdir=tmp_path / "w",
        model=ModelSettings(
            path=str(tmp_path / "model"),
            eval_samples=4,
            retain_pool=str(write_pool(tmp_path / "pool", RETAIN)),
        ),
    )
    daemon = LocalDaemon(settings)
    store = daemon.store
    base = store.get_alias("live")
    # CAGUL rewrites image tokens only: a question by name (the text door) is not its door
    # (a finding, docs/benchmarks.md), and what it says instead is not gated here either;
    # this test is about the daemon applying it.
    opened = {"max_door_leak": 1.0, "max_hallucinated": 1.0, "max_degenerate": 1.0}
    bundle = write_bundle(tmp_path / "bundles" / "two", FORGET, RETAIN, method="cagul",
                          params=PARAMS, gate=opened)  # fmt: skip
    request_id = daemon.submit(bundle)

    (version,) = [v for v in store.list_versions() if v.request_id == request_id]
    assert store.get_request(request_id).state == "committed", version.metrics["gate"]
    assert version.id == store.get_alias("live")
    assert version.parent_id == base and version.method == "cagul"
    assert version.metrics["forget_acc"] == 0.0 and version.metrics["parent_forget_acc"] == 1.0
    served = daemon.version(version.id)
    answers = served.generate(FACTS, max_new_tokens=3)
    assert answers[2:] == CITIES[2:] and not set(answers[:2]) & set(CITIES)
    assert served.fam.fingerprint() == store.get_version(base).base_fingerprint
