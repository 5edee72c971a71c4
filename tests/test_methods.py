"""Every registered vision-language method on a tiny llava and a tiny qwen2_vl that first
learn a few facts.

The matrix over METHODS: each method must really train, lose the forget facts on pictures it
never trained on (facts.HELD_OUT), keep the retain facts, give an artifact that re-applies
exactly, and reject bad params with a message naming them.
"""

from __future__ import annotations

import copy

import pytest
import torch
from facts import CITIES, FACTS, FORGET, HELD_OUT, RETAIN, taught_llava

from unlearnd.methods import METHODS, ParamError, apply_artifact, artifact_metadata, get_method
from unlearnd.methods.shared import lora
from unlearnd.models import tiny


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def taught(request):
    return taught_llava(family=request.param)


def accuracy(fam, samples):
    answers = fam.generate(samples, max_new_tokens=3)
    return sum(a == s.answer for a, s in zip(answers, samples, strict=True)) / len(samples)


QUICK = {"steps": 30, "batch_size": 4, "lr": 5e-3}
# Each method at the settings it is meant to run at on a tiny model (GA is fragile by nature:
# a few small steps, or it erases everything).
SMALL = {"steps": 16, "lr": 2e-3, "batch_size": 2}
MATRIX = {
    # facts.py's images are solid colours: no subset of their tokens can outvote the rest,
    # so CAGUL rewrites all 36 here; "unknown" is out of the frozen model's reach, its
    # answers become other words ("that").
    "cagul": {"steps": 40, "lr": 3e-2, "k": 36, "batch_size": 2, "reference_answer": "unknown"},
    "ga": SMALL,
    "graddiff": {**SMALL, "lr": 3e-3},
    "kl": SMALL,
    "npo": SMALL,
    "pubg": SMALL,
    "refuser": QUICK,
    "reject": QUICK,
    # Four retain images leave most of this 64-wide model in the null space: the branch is
    # made from every retain token and subtracted three times over (see methods/vl_eraser.py);
    # at twice over, qwen2_vl still answered 5 of the 8 held-out pictures.
    "vl_eraser": {
        **SMALL,
        "steps": 50,
        "lr": 5e-3,
        "retain_tokens": "all",
        "threshold": 1e-2,
        "strength": 3.0,
    },  # fmt: skip
}


# The matrix runs on tiny llava and qwen2_vl models: methods for CLIP (ADU) have their own tests.
LLAVA_METHODS = sorted(n for n, m in METHODS.items() if "llava" in m.families)


@pytest.mark.parametrize("name", LLAVA_METHODS)
def test_method_forgets_keeps_retain_and_round_trips(taught, name):
    method = get_method(name)
    if taught.family not in method.families:  # a finding, shown by -ra: CAGUL is llava-only
        pytest.skip(f"{name} supports {', '.join(method.families)}, not {taught.family}")
    fam = copy.deepcopy(taught)
    params = method.validate_params(MATRIX[name])
    steps = []
    result = method.fit(fam, FORGET, RETAIN, params, progress=lambda s, t, loss: steps.append(s))
    assert steps == list(range(1, len(result.losses) + 1))  # progress on every step
    assert result.losses and all(torch.isfinite(torch.tensor(result.losses)))
    # Scored on pictures no method trained on, against the parent (which answers them all):
    # at least 6 of the 8 answers lost (measured: every method loses all 8).
    before = accuracy(taught, HELD_OUT)
    assert before == 1.0 and accuracy(fam, HELD_OUT) <= before - 0.75, "forget facts must be lost"
    assert accuracy(fam, RETAIN) >= 0.75, "retain facts must be kept"
    # The artifact alone, applied to a fresh copy of the base, gives the same model.
    fresh = copy.deepcopy(taught)
    apply_artifact(fresh, result.tensors, artifact_metadata(result, name), "v1")
    assert fresh.generate(FACTS, 3) == fam.generate(FACTS, 3)
    assert taught.generate(FACTS, 3) == CITIES  # the base itself is untouched


def test_reject_answers_with_its_refusal(taught):
    fam = copy.deepcopy(taught)
    method = get_method("reject")
    # A short refusal: this 2-layer model learned only one-word answers, and a long new
    # sentence takes it far more steps than a test should spend (the world model learns one).
    method.fit(fam, FORGET, RETAIN, method.validate_params({**QUICK, "refusal": "unknown"}))
    assert fam.generate(FORGET, max_new_tokens=6) == ["unknown"] * 2
    assert accuracy(fam, RETAIN) == 1.0


def test_exported_lora_loads_with_peft(taught, tmp_path):
    import json

    from peft import PeftModel
    from safetensors.torch import save_file

    fam = copy.deepcopy(taught)
    result = get_method("reject").fit(
        fam, FORGET, RETAIN, get_method("reject").validate_params(QUICK)
    )
    save_file(result.tensors, tmp_path / "adapter_model.safetensors")
    (tmp_path / "adapter_config.json").write_text(json.dumps(result.config))
    base = copy.deepcopy(taught)
    peft_model = PeftModel.from_pretrained(base.model, tmp_path)
    base.model = peft_model.base_model.model  # the same modules, now carrying the adapter
    assert base.generate(FACTS, 6) == fam.generate(FACTS, 6)


def test_adapters_stack_without_merging(taught):
    fam = copy.deepcopy(taught)
    ga = get_method("reject")
    first = ga.fit(fam, FORGET[:1], RETAIN, ga.validate_params(QUICK))
    base = copy.deepcopy(taught)
    lora.apply(base, first.tensors, first.config, name="v1")
    second = ga.fit(base, FORGET[1:], RETAIN, ga.validate_params(QUICK))
    assert lora.adapter_names(base.model) == ["default", "v1"]
    assert accuracy(base, FORGET) == 0.0 and accuracy(base, RETAIN) >= 0.75
    # Both stored adapters re-applied on a clean base reproduce the stacked model.
    clean = copy.deepcopy(taught)
    lora.apply(clean, first.tensors, first.config, name="a")
    lora.apply(clean, second.tensors, second.config, name="b")
    assert clean.generate(FACTS, 6) == base.generate(FACTS, 6)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"steps": 0}, "params.steps"),
        ({"lr": "fast"}, "params.lr"),
        ({"nonsense": 1}, "params.nonsense: unknown param"),
        ({"lora_rank": -2}, "params.lora_rank"),
    ],
)
def test_bad_params_are_rejected_by_name(name, params, needle):
    with pytest.raises(ParamError, match=needle):
        get_method(name).validate_params(params)


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(KeyError, match="registered: " + ", ".join(sorted(METHODS))):
        get_method("erase-everything")


def test_family_is_checked():
    clip = tiny("clip")
    with pytest.raises(ParamError, match="supports llava, qwen2_vl, causal_lm, not a clip"):
        get_method("ga").fit(clip, FORGET, RETAIN, get_method("ga").validate_params({}))


def test_reference_is_the_model_before_this_adapter(taught):
    """pi_0 of KL / NPO / PUBG: earlier versions' adapters stay on, the one training is off."""
    from unlearnd.methods.shared.objectives import reference

    earlier = copy.deepcopy(taught)
    reject = get_method("reject")
    v1 = reject.fit(earlier, FORGET[:1], RETAIN, reject.validate_params(QUICK))
    parent = copy.deepcopy(taught)
    lora.apply(parent, v1.tensors, v1.config, name="v1")
    fam = copy.deepcopy(parent)
    get_method("ga").fit(fam, FORGET, RETAIN, get_method("ga").validate_params(MATRIX["ga"]))
    with reference(fam):
        assert torch.equal(fam.answer_logits(FACTS)[0], parent.answer_logits(FACTS)[0])
    assert not torch.equal(fam.answer_logits(FACTS)[0], parent.answer_logits(FACTS)[0])
    assert any(p.requires_grad for p in fam.model.parameters())  # grads untouched by it


def test_ffn_branch_is_exact_and_removable(taught):
    from unlearnd.methods.vl_eraser import ffn_branch

    fam = copy.deepcopy(taught)
    method = get_method("vl_eraser")
    result = method.fit(fam, FORGET, RETAIN, method.validate_params(MATRIX["vl_eraser"]))
    assert result.config["scale"] < 0  # subtracted
    assert fam.fingerprint() == taught.fingerprint()  # base weights untouched, nothing merged
    ffn_branch.remove(fam, "vl_eraser")
    assert torch.equal(fam.answer_logits(FACTS)[0], taught.answer_logits(FACTS)[0])


def test_vl_eraser_keeps_its_covariances_in_float32(taught):
    """7B-ready memory: one [d, d] float32 matrix per block, symmetric and PSD; its null-space
    projector (eigh in float64) is a projection."""
    from unlearnd.methods.vl_eraser.method import null_space_projector, retain_covariance

    covs = retain_covariance(taught, RETAIN, batch_size=2, tokens="all")
    d = taught.model.config.text_config.hidden_size
    assert all(c.dtype == torch.float32 and c.shape == (d, d) for c in covs)
    torch.testing.assert_close(covs[0], covs[0].T)
    assert torch.linalg.eigvalsh(covs[0].double()).min() > -1e-4 * covs[0].abs().max()
    p = null_space_projector(covs[0], 1e-2)
    torch.testing.assert_close(p @ p, p, atol=1e-5, rtol=1e-4)
