"""A routed (refuser) version outside unlearnd: one PEFT folder per expert plus the switch.

`serving.export.export_routed` writes, for a version whose deletions are refuser experts:

    DIR/manifest.json                 format, version, base model, switch settings, experts,
                                      refusals and whom each expert's refusals speak of
    DIR/experts/<expert>/             a PEFT LoRA folder per expert
    DIR/routing/centers.safetensors   the background every concept vector is centred on
    DIR/routing/<request>.safetensors each routed request's prototypes, names and threshold

and `Router(DIR).route(prompt, image)` says which expert a query turns on (None: the base
model answers), as unlearnd's own switch decides it, so a multi-LoRA server (vLLM's
per-request `LoRARequest`) can serve the version: route, then pass that expert's folder or
none; then `check(answer)` says whether the answer gives a routed target away and which
expert answers again (unlearnd's answer check). A server applies one adapter per request:
where two experts fire, the strongest wins.
The router embeds the query with the base model, like the switch (its own copy, CPU is fine).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from unlearnd.models import Sample
from unlearnd.routing.concepts import Centers
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task
from unlearnd.serving.export import ROUTED_FORMAT as FORMAT
from unlearnd.serving.version import RoutedModel


class Router:
    """The expert switch of an exported routed version: `route(prompt, image)` -> the expert
    to apply (its PEFT folder: `adapter(expert)`), or None for the base model."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        from safetensors import safe_open
        from safetensors.torch import load_file

        from unlearnd.models import load

        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not an exported routed version")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, not {FORMAT}")
        tasks = []
        for name in self.manifest["tasks"]:
            with safe_open(self.folder / name, "pt") as f:
                meta = f.metadata()
            tasks.append(Task.from_artifact(load_file(self.folder / name), meta))
        c_path = self.folder / "routing" / "centers.safetensors"
        with safe_open(c_path, "pt") as f:
            kind = f.metadata()["visual_vector"]
        c = load_file(c_path)
        visual = c["visual"].numpy() if c["visual"].numel() else None  # a text-only deployment
        centers = Centers(visual, c["textual"].numpy(), kind)
        self.switch = ExpertSwitch(sorted(tasks, key=lambda t: (t.seq, t.request_id)), centers,
                                   SwitchSettings(**self.manifest["switch"]))  # fmt: skip
        self.fam = load(self.manifest["base_model"], device=device)

    def adapter(self, expert: str) -> Path:
        """The PEFT folder of `expert`."""
        return self.folder / self.manifest["experts"][expert]

    @torch.no_grad()
    def betas(self, prompt: str, image=None) -> dict[str, float]:
        """Every expert the query turns on, with its weight (as unlearnd's switch: by image,
        by name, and by what the base model makes of the question)."""
        (betas,) = RoutedModel(self.fam, self.switch, {}).routes([Sample(prompt, "", image)])
        return betas

    def check(self, answer: str, prompt: str = "") -> str | None:
        """The answer check (routing/answer_check.py): the expert to answer again with when
        the answer (to `prompt`) names a routed target or states its facts, else None. An
        answer that still does after that is withheld: answer `refusal(prompt, expert)`
        instead."""
        told = self.switch.told(answer, prompt)
        return min(told) if told else None

    def route(self, prompt: str, image=None) -> str | None:
        """The expert to apply to this query (the strongest that fires), or None."""
        betas = self.betas(prompt, image)
        return max(betas, key=betas.__getitem__) if betas else None

    def refusal(self, prompt: str, expert: str | None = None) -> str:
        """What a routed query is answered with where the deployment answers routed queries
        from its refusal set (`manifest["routed_answer"] == "refusal"`) instead of the
        expert's generation, or where the answer check withholds an answer (`expert`: the
        one `check` named; default: the one the prompt routes to)."""
        from unlearnd.refusals import PERSON, RefusalTable

        expert = expert or self.route(prompt)
        target = self.manifest.get("target_types", {}).get(expert, PERSON)
        return RefusalTable(self.manifest["refusals"])(prompt, target)
