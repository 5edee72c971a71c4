"""CAGUL: a frozen model and an external module that rewrites the visual tokens that matter
least to the question, only on images of forgotten targets.

Reading implemented (the paper, "CAGUL"):
1. Importance of visual token j: attention from the text tokens after the image to j,
   averaged over heads, those tokens and every LM layer, on the frozen model (training:
   `text_to_visual_attention` of each prompt; inference: the same reduction inside the
   forward, see methods/visual_tokens.py).
2. Discriminator: a 2-layer MLP on the mean visual token (the projector's output,
   standardised with the training images' statistics). First fitted alone on the cached
   tokens of every training image (BCE, forget images 1, retain images 0, positives
   weighted by the class ratio), then kept in the loss (`bce_weight`).
3. Encoder: a 2-layer MLP that maps each of the k least important tokens (with the mean
   token as context) to a residual, plus one learned vector per slot; the new embedding is
   written in place of the token when the discriminator fires (probability > `threshold`).
   A frozen language model answers only what its inputs steer it to: k must be large
   enough to outweigh the image's other tokens (6 of the world model's 9; all 36 on the
   solid-colour images of the tests, where every token carries the same colour).
   L = NLL(reference_answer | D_f) + alpha * NLL(D_r) + beta * KL(pi_0 || pi) on D_r
   + bce_weight * BCE. The gate is hard in the forward, as at inference, and
   straight-through in the backward, so the retain terms reach the discriminator.
The base model's weights never train and never change (their requires_grad flags are off
while fitting and restored after); the module is an artifact of its own (apply
"visual_tokens"), left attached after `fit` as non-persistent buffers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from unlearnd.methods.cagul import visual_tokens as vt
from unlearnd.methods.shared.interface import (
    Method,
    MethodParams,
    MethodResult,
    ParamError,
    Progress,
)
from unlearnd.methods.shared.loop import Batches, frozen_base, train
from unlearnd.methods.shared.objectives import token_kl
from unlearnd.models.base import ModelFamily, Sample


class CAGULParams(MethodParams):
    steps: int = Field(100, ge=1, le=100_000, description="optimizer steps")
    lr: float = Field(3e-2, gt=0, le=1.0, description="learning rate")
    k: int = Field(6, ge=1, le=100_000, description="visual tokens rewritten per image")
    alpha: float = Field(0.5, ge=0, description="weight of the retain NLL")
    beta: float = Field(0.5, ge=0, description="weight of KL(pi_0 || pi) on the retain set")
    disc_hidden: int = Field(64, ge=1, le=8192, description="discriminator hidden width")
    enc_hidden: int = Field(128, ge=1, le=8192, description="encoder hidden width")
    threshold: float = Field(
        0.5, gt=0, lt=1, description="the discriminator fires above this probability"
    )
    disc_steps: int = Field(
        200, ge=0, le=100_000, description="discriminator-only steps before the joint training"
    )
    bce_weight: float = Field(1.0, ge=0, description="weight of the discriminator's BCE")
    reference_answer: str = Field(
        "I cannot identify this person .",
        min_length=1,
        description="the non-leaking answer the forget queries are trained toward",
    )


@torch.no_grad()
def mean_tokens(fam: ModelFamily, images: list) -> torch.Tensor:
    """The base projector's mean visual token per image: [B, D] float32."""
    cfg = fam.model.config
    out = []
    with vt.frozen_tokens(fam):
        for i in range(0, len(images), 64):
            pixels = fam.processor.image_processor(
                images=[im.convert("RGB") for im in images[i : i + 64]], return_tensors="pt"
            )["pixel_values"].to(fam.device, fam.dtype)
            feats = fam.model.model.get_image_features(
                pixel_values=pixels,
                vision_feature_layer=cfg.vision_feature_layer,
                vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            )
            feats = getattr(feats, "pooler_output", feats)
            feats = torch.stack(list(feats)) if isinstance(feats, list | tuple) else feats
            out.append(feats.float().mean(1))
    return torch.cat(out)


def init_tensors(pooled: torch.Tensor, params: CAGULParams, seed: int) -> dict:
    """Seeded MLPs (PyTorch's Linear init); the encoder's output layer starts at zero, so a
    firing rewriter starts as the identity."""
    gen = torch.Generator().manual_seed(seed)
    d = pooled.shape[1]

    def linear(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1 / math.sqrt(n_in)
        w = (torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound
        return w, (torch.rand(n_out, generator=gen) * 2 - 1) * bound

    d1_w, d1_b = linear(params.disc_hidden, d)
    d2_w, d2_b = linear(1, params.disc_hidden)
    e1_w, e1_b = linear(params.enc_hidden, 2 * d)
    return {
        "mu": pooled.mean(0),
        "sigma": pooled.std(0, unbiased=False).clamp(min=1e-4),
        **{"d1_w": d1_w, "d1_b": d1_b, "d2_w": d2_w, "d2_b": d2_b},
        **{"e1_w": e1_w, "e1_b": e1_b},
        "e2_w": torch.zeros(d, params.enc_hidden),
        "e2_b": torch.zeros(d),
        "slots": torch.zeros(params.k, d),
    }


class CAGUL(Method):
    name = "cagul"
    summary = (
        "frozen model + external module: a discriminator spots forgotten targets, an encoder "
        "rewrites their k least-attended visual tokens"
    )
    families = ("llava",)
    Params = CAGULParams
    appliers = {"visual_tokens": vt.apply}

    def fit(
        self,
        fam: ModelFamily,
        forget: list[Sample],
        retain: list[Sample],
        params: MethodParams,
        progress: Progress | None = None,
    ) -> MethodResult:
        assert isinstance(params, CAGULParams)
        self.check_family(fam)
        if any(s.image is None for s in forget):
            raise ParamError("method 'cagul': every forget sample needs an image")
        # A question without an image never reaches the rewritten visual tokens, and the
        # language model is frozen: text-only retain samples have nothing to keep.
        retain = [s for s in retain if s.image is not None]
        if not retain:
            raise ParamError("method 'cagul': the retain samples need images (none has one)")
        n_tokens = fam.vision_shape()["tokens_per_image"]
        if params.k > n_tokens:
            raise ParamError(
                f"method 'cagul': params.k: {params.k} exceeds the model's {n_tokens} "
                "visual tokens per image"
            )
        # Discriminator data: each distinct image once (samples share portraits).
        images, labels, seen = [], [], set()
        for label, samples in ((1.0, forget), (0.0, retain)):
            for s in samples:
                if id(s.image) not in seen:
                    seen.add(id(s.image))
                    images.append(s.image)
                    labels.append(label)
        pooled = mean_tokens(fam, images)
        y = torch.tensor(labels, device=fam.device)
        pos_weight = ((y == 0).sum() / (y == 1).sum().clamp(min=1)).clamp(min=1.0)

        taken = {n for n, _ in fam.projector().named_children()}
        name = next(
            f"cagul{i}" for i in range(len(taken) + 1) if vt.PREFIX + f"cagul{i}" not in taken
        )
        with frozen_base(fam):
            module = vt.Rewriter(
                init_tensors(pooled.cpu(), params, params.seed), params.k, params.threshold, True
            )
            vt.add(fam, name, module)
            try:
                losses = self._train(
                    fam, module, forget, retain, images, pooled, y, pos_weight, params, progress
                )
            finally:
                vt.remove(fam, name)
        tensors, config = vt.export(module)
        vt.apply(fam, tensors, config, name)  # attached as buffers: out of the fingerprint
        return MethodResult("visual_tokens", tensors, config, losses)

    def _train(self, fam, module, forget, retain, images, pooled, y, pos_weight, params, progress):
        def bce() -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(
                module.disc_logits(pooled), y, pos_weight=pos_weight
            )

        # The discriminator alone first: an encoder only learns where the gate opens.
        disc = [module.d1_w, module.d1_b, module.d2_w, module.d2_b]
        optim = torch.optim.AdamW(disc, lr=1e-2, weight_decay=0.0)
        for _ in range(params.disc_steps):
            optim.zero_grad(set_to_none=True)
            bce().backward()
            optim.step()

        refs = [Sample(s.question, params.reference_answer, s.image) for s in forget]
        importance: dict[tuple[int, int], torch.Tensor] = {}

        def ranked(kind: int, samples: list[Sample], idx: list[int]) -> torch.Tensor:
            """Importance of the batch's visual tokens, each sample measured once."""
            todo = [i for i in idx if (kind, i) not in importance]
            if todo:
                with vt.frozen_tokens(fam):
                    att = fam.text_to_visual_attention([samples[i] for i in todo])
                importance.update({(kind, i): a for i, a in zip(todo, att, strict=True)})
            return torch.stack([importance[kind, i] for i in idx]).to(fam.device)

        row = {id(im): i for i, im in enumerate(images)}

        def fires(batch: list[Sample]) -> torch.Tensor:
            with torch.no_grad():
                logits = module.disc_logits(pooled[[row[id(s.image)] for s in batch]])
            return torch.sigmoid(logits) > module.threshold

        forget_batches = Batches(range(len(refs)), params.batch_size, params.seed)
        retain_batches = (
            Batches(range(len(retain)), params.batch_size, params.seed + 1) if retain else None
        )

        def step_loss(_: int) -> torch.Tensor:
            idx = forget_batches.next()
            with vt.given_importance(fam, ranked(0, forget, idx)):
                loss = fam.answer_loss([refs[i] for i in idx])
            if retain_batches is not None and (params.alpha > 0 or params.beta > 0):
                idx = retain_batches.next()
                batch = [retain[i] for i in idx]
                with vt.given_importance(fam, ranked(1, retain, idx)):
                    # One forward gives both retain terms (logits, answer ids, mask).
                    student, targets, mask = fam._answer_view(batch)
                    if params.alpha > 0:
                        logp = student.log_softmax(-1).gather(-1, targets[..., None])[..., 0]
                        nll = -(logp * mask).sum() / mask.sum().clamp(min=1)
                        loss = loss + params.alpha * nll
                    if params.beta > 0 and bool(fires(batch).any()):
                        # Where it does not fire, pi is pi_0 exactly: KL and its gradient 0.
                        module.enabled = False  # pi_0: earlier artifacts on, this one off
                        try:
                            with torch.no_grad():
                                teacher, _ = fam.answer_logits(batch)
                        finally:
                            module.enabled = True
                        loss = loss + params.beta * token_kl(teacher, student, mask)
            return loss + params.bce_weight * bce()

        return train(fam, step_loss, params, progress)
