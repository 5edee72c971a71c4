"""What LLaVA and Qwen2-VL share: prompts, batching, answer masks, generation, attention.

A family subclass says only how one sample's prompt becomes token ids plus vision inputs
(`_encode_prompt`) and where its modules live; everything else is here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from unlearnd.models.base import ModelFamily, Sample

DEFAULT_TEMPLATE = "USER: {image}{question} ASSISTANT:"


def mean_attention(model: nn.Module, lm: nn.Module, run: Any) -> torch.Tensor:
    """`run()` with eager attention (the only kind that computes the weights); the language
    model `lm`'s attention weights averaged over its layers and heads, [B, Q, K] float32.
    Each layer's weights are reduced as that layer runs, in the model's dtype, so one layer's
    maps are held at a time (output_attentions keeps all of them: 32 x 32 heads x Q x K on a
    7B)."""
    total: list[torch.Tensor] = []

    def add(_module: nn.Module, _args: tuple, out: tuple) -> None:
        mean = out[1].mean(1, dtype=torch.float32)  # over heads
        total[:] = [total[0] + mean] if total else [mean]

    layers = [m for name, m in lm.named_modules() if name.endswith("self_attn")]
    handles = [layer.register_forward_hook(add) for layer in layers]
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        run()
    finally:
        model.set_attn_implementation(impl)
        for handle in handles:
            handle.remove()
    return total[0] / len(layers)


@dataclass
class Encoded:
    """A right- or left-padded batch with where each answer starts and how long it is."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    vision: dict[str, torch.Tensor] = field(default_factory=dict)
    answer_start: torch.Tensor | None = None
    answer_len: torch.Tensor | None = None
    prompt_len: list[int] = field(default_factory=list)


class GenerativeFamily(ModelFamily):
    image_placeholder: str  # text that stands for one image in a prompt
    image_token_id: int

    def __init__(self, model: nn.Module, processor: Any, device: torch.device, dtype: torch.dtype):
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)  # a text LM: the tokenizer
        self.device, self.dtype = device, dtype
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_id

    # --- prompts ------------------------------------------------------------------------
    def chat_template(self) -> str | None:
        """The folder's chat template (the processor's, else the tokenizer's), if it has one."""
        template = getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None
        )
        if isinstance(template, dict):  # several named templates: the default one
            template = template.get("default")
        return template or None

    def prompt_text(self, sample: Sample) -> str:
        """The prompt as text, one unexpanded image placeholder where the image goes."""
        template = self.chat_template()
        if template:
            content: list[dict[str, str]] = [{"type": "image"}] if sample.image is not None else []
            content.append({"type": "text", "text": sample.question})
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}],
                chat_template=template,
                add_generation_prompt=True,
                tokenize=False,
            )
        image = self.image_placeholder + "\n" if sample.image is not None else ""
        return DEFAULT_TEMPLATE.format(image=image, question=sample.question)

    def _encode_prompt(
        self, prompt: str, image: Image.Image | None
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Token ids of `prompt` (its image placeholder expanded) and the image's vision inputs."""
        raise NotImplementedError

    def _answer_ids(self, prompt: str, answer: str) -> list[int]:
        """Token ids of the answer as they come after `prompt`, then EOS.

        Tokenised in context (prompt + answer, minus the prompt's own tokens) because
        sentencepiece and BPE tokenizers split a word differently at the start of a text.
        """
        if not prompt[-1:].isspace():
            answer = " " + answer.strip()
        tok = self.tokenizer
        head = tok(prompt, add_special_tokens=False).input_ids
        whole = tok(prompt + answer, add_special_tokens=False).input_ids
        if whole[: len(head)] == head:
            ids = whole[len(head) :]
        else:  # the boundary merged into one token: fall back to the answer on its own
            ids = tok(answer, add_special_tokens=False).input_ids
        return [*ids, self.eos_id]

    def _vision_inputs(self, parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {
            k: torch.cat([p[k] for p in parts]).to(self.device)
            if not torch.is_floating_point(parts[0][k])
            else torch.cat([p[k] for p in parts]).to(self.device, self.dtype)
            for k in parts[0]
        }

    def encode(self, batch: list[Sample], with_answer: bool, left_pad: bool = False) -> Encoded:
        rows, vision, starts, lens, plens = [], [], [], [], []
        for sample in batch:
            prompt = self.prompt_text(sample)
            ids, vis = self._encode_prompt(prompt, sample.image)
            answer = self._answer_ids(prompt, sample.answer) if with_answer else []
            rows.append(ids + answer)
            vision.append(vis)
            starts.append(len(ids))
            lens.append(len(answer))
            plens.append(len(ids))
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            offset = width - len(row) if left_pad else 0
            input_ids[i, offset : offset + len(row)] = torch.tensor(row)
            mask[i, offset : offset + len(row)] = 1
            starts[i] += offset
        return Encoded(
            input_ids.to(self.device),
            mask.to(self.device),
            self._vision_inputs(vision),
            torch.tensor(starts, device=self.device),
            torch.tensor(lens, device=self.device),
            plens,
        )

    def _inputs(self, enc: Encoded, generating: bool = False) -> dict[str, Any]:
        """Keyword inputs of the model's forward (and of generate) for an encoded batch."""
        return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, **enc.vision}

    def _forward(self, enc: Encoded, **kwargs: Any) -> Any:
        return self.model(**self._inputs(enc), **kwargs)

    # --- training signals ---------------------------------------------------------------
    def _answer_view(self, batch: list[Sample]) -> tuple[torch.Tensor, ...]:
        """(logits [B, A, V], target ids [B, A], mask [B, A]) at the answer positions."""
        return self.answer_view(self.encode(batch, with_answer=True))

    def answer_view(self, enc: Encoded) -> tuple[torch.Tensor, ...]:
        """`_answer_view` of an already encoded batch (a trainer may swap its pixels)."""
        logits = self._forward(enc).logits
        width = int(enc.answer_len.max())
        steps = torch.arange(width, device=self.device)
        # The logit at position p predicts token p + 1: answer token j comes from start + j - 1.
        pos = (enc.answer_start[:, None] - 1 + steps).clamp(max=logits.shape[1] - 1)
        picked = logits.gather(1, pos[..., None].expand(-1, -1, logits.shape[-1]))
        mask = (steps[None, :] < enc.answer_len[:, None]).float()
        targets = enc.input_ids.gather(1, (pos + 1).clamp(max=logits.shape[1] - 1))
        return picked.float(), targets, mask

    def answer_logits(self, batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _, mask = self._answer_view(batch)
        return logits, mask

    def answer_logprobs(self, batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, targets, mask = self._answer_view(batch)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        return logp * mask, mask

    # --- inference ----------------------------------------------------------------------
    @torch.no_grad()
    def generate_ids(self, batch: list[Sample], max_new_tokens: int = 16) -> torch.Tensor:
        """Greedy new token ids [B, <= max_new_tokens], left-padded batch with KV cache; a row
        that reached EOS is filled with padding, and generation ends when every row has."""
        enc = self.encode(batch, with_answer=False, left_pad=True)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                **self._inputs(enc, generating=True),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=self.eos_id,
                pad_token_id=self.pad_id,
            )
        finally:
            self.model.train(was_training)
        return out[:, enc.input_ids.shape[1] :].cpu()

    def generate(self, batch: list[Sample], max_new_tokens: int = 16) -> list[str]:
        new = self.generate_ids(batch, max_new_tokens)
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    @torch.no_grad()
    def text_to_visual_attention(self, batch: list[Sample]) -> torch.Tensor:
        if any(s.image is None for s in batch):
            raise ValueError("text_to_visual_attention needs an image in every sample")
        enc = self.encode(batch, with_answer=False)
        mean = mean_attention(self.model, self.language_model(), lambda: self._forward(enc))
        rows = []
        for i in range(len(batch)):
            visual = (enc.input_ids[i] == self.image_token_id).nonzero().squeeze(-1)
            # Text tokens after the image start (earlier ones cannot see it, causal mask).
            query = torch.arange(int(visual.min()) + 1, enc.prompt_len[i], device=self.device)
            query = query[enc.input_ids[i, query] != self.image_token_id]
            rows.append(mean[i][query][:, visual].mean(0))
        return torch.stack(rows).cpu()

    @torch.no_grad()
    def answer_distribution(self, batch: list[Sample]) -> torch.Tensor:
        # Left-padded, so every row's last prompt position is the last column.
        enc = self.encode(batch, with_answer=False, left_pad=True)
        return self._forward(enc).logits[:, -1].float().softmax(-1).cpu()

    @torch.no_grad()
    def prompt_states(self, batch: list[Sample], layer: int, pool: str = "last") -> torch.Tensor:
        """The language model's hidden states of the prompt after block `layer` (0: the
        embeddings, -1: the last block, normed), at the position the answer starts from
        (`pool` "last") or averaged over the prompt's tokens ("mean"): [B, D], float32."""
        enc = self.encode(batch, with_answer=False, left_pad=True)
        hidden = self._forward(enc, output_hidden_states=True).hidden_states[layer]
        if pool == "last":  # left-padded: the last column
            return hidden[:, -1].float().cpu()
        m = enc.attention_mask[..., None].to(hidden.dtype)
        return ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu()

    @torch.no_grad()
    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        """Mean of the language model's last hidden states over the text's tokens."""
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        hidden = self.language_model()(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].to(hidden.dtype)
        return ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu()

    # --- modules ------------------------------------------------------------------------
    def language_model(self) -> nn.Module:
        return self.model.get_submodule(self.language_model_path)

    def projector(self) -> nn.Module:
        return self.model.get_submodule(self.projector_path())

    def ffn_modules(self) -> list[nn.Module]:
        return [self.model.get_submodule(p) for p in self.ffn_paths()]

    def ffn_paths(self) -> list[str]:
        layers = self.language_model().layers
        return [f"{self.language_model_path}.layers.{i}.mlp" for i in range(len(layers))]

    language_model_path = "model.language_model"

    # --- bookkeeping --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)

    def _count(self, module: nn.Module, leave_out: nn.Module | None = None) -> int:
        """Parameters of `module`, less those of `leave_out` (Qwen2-VL's tower holds its
        projector, the merger: counted once, as the projector)."""
        skip = {id(p) for p in leave_out.parameters()} if leave_out is not None else set()
        return sum(p.numel() for p in module.parameters() if id(p) not in skip)

    def info(self) -> dict[str, Any]:
        first_ffn = self.ffn_modules()[0]
        ffn_shapes = {n: list(p.shape) for n, p in first_ffn.named_parameters()}
        return {
            "family": self.family,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "parameters": {
                "total": self._count(self.model),
                "vision": self._count(self.vision_tower(), leave_out=self.projector()),
                "projector": self._count(self.projector()),
                "language": self._count(self.language_model()),
            },
            "vision": self.vision_shape(),
            "projector": {n: list(p.shape) for n, p in self.projector().named_parameters()},
            "ffn": {"blocks": len(self.ffn_paths()), "per_block": ffn_shapes},
        }

    def vision_tower(self) -> nn.Module:
        raise NotImplementedError

    def vision_shape(self) -> dict[str, Any]:
        raise NotImplementedError
