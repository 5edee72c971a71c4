"""Every operation of the model interface on a tiny model of each family, offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnd.models import Sample, UnsupportedOperation, detect_family, load, tiny
from unlearnd.models.tiny import DEFAULT_WORDS
from unlearnd.models.tokenizer import build_word_tokenizer

torch.set_num_threads(1)  # the machine's cores are shared

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
    # Smaller than the defaults (which `saved` covers): these tests train a few steps.
    return tiny(request.param, seed=2, vision_layers=1, text_layers=2)


def test_features_have_one_row_per_input(saved):
    fam, _ = saved
    v = fam.vision_features([RED, GREEN])
    t = fam.text_embedding(["where does this person live", "a cat"])
    assert v.shape[0] == 2 and t.shape[0] == 2
    assert v.dtype == t.dtype == torch.float32 and v.device.type == "cpu"
    assert torch.isfinite(v).all() and torch.isfinite(t).all()
    assert not torch.allclose(v[0], v[1])  # different images, different features
    assert torch.allclose(fam.vision_features([GREEN])[0], v[1], atol=1e-5)  # batch-independent


def test_vision_features_do_not_depend_on_the_projector(saved):
    # Routing embeds images with experts (projector deltas) present: they must not move it.
    fam, _ = saved
    before = fam.vision_features([RED])
    saved_state = {k: v.clone() for k, v in fam.projector().state_dict().items()}
    with torch.no_grad():
        for p in fam.projector().parameters():
            p.add_(0.5)
    moved = fam.vision_features([RED])
    fam.projector().load_state_dict(saved_state)
    if fam.family == "clip":  # CLIP's features are the projected embedding by definition
        assert not torch.allclose(before, moved)
    else:
        assert torch.allclose(before, moved)


def test_answer_distribution_is_the_first_answer_tokens(gen):
    # Routing on "answer_distribution" reads what the model is about to say: the probabilities
    # of the answer's first token, one row per sample, batch-independent.
    with_images = [BATCH[0], BATCH[2]]
    dist = gen.answer_distribution(with_images)
    assert dist.shape == (2, gen.model.config.text_config.vocab_size)
    assert torch.allclose(dist.sum(-1), torch.ones(2), atol=1e-5)
    logits, _ = gen.answer_logits(with_images)
    assert torch.allclose(dist, logits[:, 0].softmax(-1).cpu(), atol=1e-5)
    assert torch.allclose(gen.answer_distribution([BATCH[2]])[0], dist[1], atol=1e-5)
    asked_else = gen.answer_distribution([Sample("what is this ?", "", GREEN)])[0]
    assert not torch.allclose(asked_else, dist[1], atol=1e-4)  # the question counts


def test_clip_has_no_answer_distribution():
    with pytest.raises(UnsupportedOperation):
        tiny("clip", seed=1).answer_distribution([BATCH[0]])


def test_answer_mask_covers_exactly_the_answer_tokens(gen):
    logp, mask = gen.answer_logprobs(BATCH)
    tok = gen.tokenizer
    expected = [len(tok(" " + s.answer, add_special_tokens=False).input_ids) + 1 for s in BATCH]
    assert mask.sum(1).tolist() == expected  # answer words + EOS, nothing of the prompt
    assert (logp[mask == 0] == 0).all() and (logp[mask == 1] < 0).all()
    logits, mask2 = gen.answer_logits(BATCH)
    assert logits.shape[:2] == mask2.shape and logits.shape[-1] == len(tok)
    assert torch.isfinite(logits).all()
    # The masked log-probs are the log-softmax of these logits at the answer's own tokens.
    enc = gen.encode(BATCH, with_answer=True)
    for i in range(len(BATCH)):
        start, n = int(enc.answer_start[i]), int(enc.answer_len[i])
        targets = enc.input_ids[i, start : start + n]
        assert targets[-1] == tok.eos_token_id
        assert tok.decode(targets[:-1]) == BATCH[i].answer
        want = torch.log_softmax(logits[i, :n], -1).gather(-1, targets[:, None]).squeeze(-1)
        assert torch.allclose(logp[i, :n], want, atol=1e-5)


def test_answer_logprobs_do_not_depend_on_the_batch(gen):
    logp, _ = gen.answer_logprobs(BATCH)
    for i, sample in enumerate(BATCH):
        alone, mask = gen.answer_logprobs([sample])
        n = int(mask.sum())
        assert torch.allclose(logp[i, :n], alone[0, :n], atol=1e-4)


def test_loss_has_gradient_and_training_lowers_it(gen):
    params = list(gen.model.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    gen.model.train()
    first = None
    for _ in range(15):
        loss = gen.answer_loss(BATCH)
        assert loss.ndim == 0 and loss.requires_grad
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        assert gen.projector().parameters().__next__().grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        opt.step()
    gen.model.eval()
    assert gen.answer_loss(BATCH).item() < first * 0.5


def test_batched_generation_equals_one_by_one(gen):
    together = gen.generate(BATCH, max_new_tokens=5)
    alone = [gen.generate([s], max_new_tokens=5)[0] for s in BATCH]
    assert together == alone
    assert all(isinstance(t, str) for t in together)


def test_generation_stops_at_eos(gen):
    # Teach one answer, then the model must stop right after it instead of running on.
    sample = Sample("what is this ?", "red cat", RED)
    opt = torch.optim.AdamW(gen.model.parameters(), lr=3e-3)
    gen.model.train()
    for _ in range(40):
        loss = gen.answer_loss([sample])
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids = gen.generate_ids([sample], max_new_tokens=8)
    assert gen.model.training  # generation put the training mode back
    gen.model.eval()
    assert ids.shape == (1, 3) and ids[0, -1] == gen.tokenizer.eos_token_id  # red cat </s>
    assert gen.generate([sample], max_new_tokens=8) == ["red cat"]


def test_mean_attention_equals_every_layers_weights_averaged(gen):
    """Reduced layer by layer (one layer's maps held at a time) = output_attentions' maps,
    stacked and averaged; the model's own attention implementation is put back."""
    from unlearnd.models.generative import mean_attention

    enc = gen.encode([BATCH[0], BATCH[2]], with_answer=False)
    impl = gen.model.config._attn_implementation
    got = mean_attention(gen.model, gen.language_model(), lambda: gen._forward(enc))
    assert gen.model.config._attn_implementation == impl
    gen.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            every = gen._forward(enc, output_attentions=True).attentions
    finally:
        gen.model.set_attn_implementation(impl)
    torch.testing.assert_close(got, torch.stack([a.float() for a in every]).mean(dim=(0, 2)))


def test_attention_to_visual_tokens(gen):
    att = gen.text_to_visual_attention([BATCH[0], BATCH[2]])
    n_visual = int(
        (gen.encode([BATCH[0]], with_answer=False).input_ids == gen.image_token_id).sum()
    )
    expected = 36 if gen.family == "llava" else (48 // 8) ** 2 // 4  # patches, or merged 2x2
    assert n_visual == expected
    assert att.shape == (2, n_visual)
    assert (att >= 0).all() and torch.isfinite(att).all() and att.sum() > 0
    with pytest.raises(ValueError, match="needs an image"):
        gen.text_to_visual_attention([BATCH[1]])


def test_module_paths_resolve_to_the_modules(saved):
    fam, _ = saved
    assert fam.model.get_submodule(fam.projector_path()) is fam.projector()
    assert [fam.model.get_submodule(p) for p in fam.ffn_paths()] == fam.ffn_modules()
    assert len(fam.ffn_modules()) == fam.info()["ffn"]["blocks"] >= 2
    info = fam.info()
    assert info["parameters"]["total"] == sum(p.numel() for p in fam.model.parameters())
    counts = info["parameters"]
    assert min(counts.values()) > 0  # each part counted once: the projector is not "vision"
    assert counts["vision"] + counts["projector"] + counts["language"] <= counts["total"]


def test_save_load_round_trip_is_exact(saved):
    fam, folder = saved
    again = load(folder, device="cpu")
    assert type(again) is type(fam) and again.family == detect_family(folder)
    assert again.fingerprint() == fam.fingerprint()
    close = dict(rtol=0, atol=1e-6)  # same weights; kernels may sum in another order
    assert torch.allclose(again.vision_features([RED]), fam.vision_features([RED]), **close)
    text = ["a red cat"]
    assert torch.allclose(again.text_embedding(text), fam.text_embedding(text), **close)
    if fam.family in GENERATIVE:
        a, _ = again.answer_logits(BATCH)
        b, _ = fam.answer_logits(BATCH)
        assert torch.allclose(a, b, **close)
        assert again.generate(BATCH, 4) == fam.generate(BATCH, 4)


def test_clip_classifies_and_refuses_text_generation():
    clip = tiny("clip", vision_layers=1, text_layers=1)
    assert clip.generates_text is False
    probs = clip.classify([RED, GREEN], ["cat", "dog", "red"])
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    for op in (clip.generate, clip.answer_logprobs, clip.answer_logits, clip.answer_loss):
        with pytest.raises(UnsupportedOperation, match="does not answer"):
            op(BATCH)
    with pytest.raises(UnsupportedOperation):
        clip.text_to_visual_attention(BATCH)


def test_clip_pools_text_at_eos_with_a_plain_word_tokenizer():
    # A tokenizer without <s> ... </s> must still give each text its own embedding.
    clip = tiny("clip", tokenizer=build_word_tokenizer(DEFAULT_WORDS), text_layers=1)
    emb = clip.text_embedding(["red cat", "red dog", "red"])
    assert not torch.allclose(emb[0], emb[1]) and not torch.allclose(emb[0], emb[2])


LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize("family", GENERATIVE)
def test_chat_template_of_the_folder_is_used_and_kept(family, tmp_path):
    tok = build_word_tokenizer(DEFAULT_WORDS, extra_special=["<|im_start|>", "<|im_end|>"])
    small = dict(vision_layers=1, text_layers=1)
    if family == "llava":  # real LLaVA folders keep it in the processor
        fam = tiny(family, tokenizer=tok, **small)
        fam.processor.chat_template = LLAVA_TEMPLATE
        want = "USER: <image>\nwhat is this ? ASSISTANT:"
    else:  # real Qwen2-VL folders also keep it in the tokenizer
        tok.chat_template = QWEN_TEMPLATE
        fam = tiny(family, tokenizer=tok, **small)
        want = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>what is this ?"
        want += "<|im_end|>\n<|im_start|>assistant\n"
    sample = Sample("what is this ?", "red cat", RED)
    assert fam.prompt_text(sample) == want
    text_only = fam.prompt_text(Sample("who ?"))
    assert "who ?" in text_only and "<image>" not in text_only and "image_pad" not in text_only
    _, mask = fam.answer_logprobs([sample, Sample("who ?", "blue dog")])
    assert mask.sum(1).tolist() == [3, 3]
    fam.save(tmp_path)
    again = load(tmp_path)
    assert again.prompt_text(sample) == want
    assert torch.equal(again.answer_logits([sample])[0], fam.answer_logits([sample])[0])


def test_answer_prototypes_keep_only_samples_the_model_still_answers(gen):
    from unlearnd.routing.concepts import decompose, visual_vectors

    dist = gen.answer_distribution([BATCH[0], BATCH[2]])
    top = gen.tokenizer.convert_ids_to_tokens(dist.argmax(-1).tolist())
    said = Sample(BATCH[0].question, top[0], RED)  # the model's own first answer token
    wrong = [w for w in DEFAULT_WORDS if w not in top][0]
    other = Sample(BATCH[2].question, wrong, GREEN)  # an answer it does not give
    visual, _ = decompose(gen, [said, other], visual_vector="answer_distribution")
    assert np.allclose(visual, dist[:1].numpy(), atol=1e-5)  # only the answered one
    # Nothing answered: the request keeps every sample rather than none.
    visual, _ = decompose(gen, [other], visual_vector="answer_distribution")
    assert np.allclose(visual, dist[1:].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="visual vector must be one of"):
        visual_vectors(gen, [said], "pixels")


def test_a_clip_model_routes_on_its_image_embedding_whatever_the_key():
    from unlearnd.routing.concepts import visual_vectors

    clip = tiny("clip", seed=1)
    samples = [Sample("", "", RED), Sample("", "", GREEN)]
    expected = clip.vision_features([RED, GREEN])
    assert torch.equal(visual_vectors(clip, samples, "answer_distribution"), expected)
