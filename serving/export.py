"""A version out of unlearnd, for the servers a platform already runs.

- `peft`: one PEFT LoRA folder (`adapter_config.json` naming the base model's folder,
  `adapter_model.safetensors`) that `PeftModel.from_pretrained(base, DIR)`, vLLM or TGI load
  beside the base model. A version stacks one adapter per deletion; they are written as one
  LoRA of the summed rank: on every target module A = [A_1; A_2; ...] and
  B = [s_1 B_1, s_2 B_2, ...] with alpha = rank (scale 1), so B A = sum_i s_i B_i A_i exactly.
- `merged`: a full Hugging Face model folder with that sum added to the base weights.

A routed version (refuser experts behind the switch) leaves as one PEFT folder per expert and
the switch's files, which `serving.router.Router` reads. A method whose result is not a LoRA
(CAGUL's visual-token rewriter, VL-Eraser's FFN branch, ADU's vision prompts) needs unlearnd's
own serving: the export names the reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnd.registry import ArtifactStore, RegistryStore
from unlearnd.routing.tasks import CONCEPTS_PREFIX
from unlearnd.serving.deployment import Deployment
from unlearnd.serving.version import ADAPTER_PREFIX, TARGET_TYPES, manifest_of

FORMATS = ("peft", "merged")
ROUTED_FORMAT = "unlearnd-routed/1"  # the manifest.json of an exported routed version
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
_PREFIX = "base_model.model."  # PEFT's saved keys: base_model.model.<module>.lora_A.weight


class ExportError(ValueError):
    """The version cannot leave unlearnd in the asked format; the message says why."""


def _scale(config: dict[str, Any]) -> float:
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def language_model_only(modules: list[str]) -> bool:
    """Multi-LoRA servers (vLLM) apply adapters to a VLM's language model, not to its
    projector or vision tower: whether these target modules are all in the former."""
    return all(".language_model." in f".{m}." for m in modules)


def adapters(manifest: dict[str, Any], artifacts: ArtifactStore, what: str) -> list[tuple]:
    """(tensors, config) of every method adapter of the manifest, in the order they apply,
    or ExportError naming what cannot be exported."""
    out = []
    for key, sha in sorted((manifest.get("artifacts") or {}).items()):
        if not key.startswith(ADAPTER_PREFIX):
            continue
        metadata = artifacts.load_metadata(sha)  # verifies the blob's sha256 first
        recipe = metadata.get("apply")
        if recipe != "lora":
            raise ExportError(
                f"{what}: the adapter of {key.removeprefix(ADAPTER_PREFIX)} is a {recipe!r} "
                f"result (method {metadata.get('method', '?')}), not a LoRA; only LoRA results "
                "export to PEFT or merge"
            )
        config = json.loads(metadata.get("config", "{}"))
        if config.get("use_dora") or config.get("bias", "none") != "none":
            raise ExportError(f"{what}: {key} uses DoRA or LoRA biases, which do not stack")
        out.append((artifacts.load_tensors(sha), config))
    if not out:
        raise ExportError(f"{what} changes nothing (the base model): serve the base folder")
    return out


def combine(parts: list[tuple]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One LoRA (PEFT's saved tensors and config) equal to the sum of `parts`."""
    modules: dict[str, list] = {}  # module -> [(A, scaled B) per part, None where absent]
    ranks = [int(config["r"]) for _, config in parts]
    for i, (tensors, config) in enumerate(parts):
        s = _scale(config)
        for key, a in tensors.items():
            if key.endswith(".lora_A.weight"):
                module = key.removeprefix(_PREFIX).removesuffix(".lora_A.weight")
                b = tensors[key.replace(".lora_A.", ".lora_B.")]
                row = modules.setdefault(module, [None] * len(parts))
                row[i] = (a.float(), b.float() * s)
    rank = sum(ranks)
    tensors: dict[str, torch.Tensor] = {}
    for module, row in sorted(modules.items()):
        a_in = next(p[0].shape[1] for p in row if p is not None)
        b_out = next(p[1].shape[0] for p in row if p is not None)
        a = [p[0] if p else torch.zeros(r, a_in) for p, r in zip(row, ranks, strict=True)]
        b = [p[1] if p else torch.zeros(b_out, r) for p, r in zip(row, ranks, strict=True)]
        tensors[f"{_PREFIX}{module}.lora_A.weight"] = torch.cat(a, 0).contiguous()
        tensors[f"{_PREFIX}{module}.lora_B.weight"] = torch.cat(b, 1).contiguous()
    config = {**parts[0][1], "r": rank, "lora_alpha": rank, "use_rslora": False,
              "target_modules": sorted(modules), "rank_pattern": {}, "alpha_pattern": {},
              "lora_dropout": 0.0}  # fmt: skip
    return tensors, config


def export_version(
    deployment: Deployment,
    store: RegistryStore,
    version_id: int,
    out: Path,
    fmt: str = "peft",
) -> dict[str, Any]:
    """Write version `version_id` to the new folder `out`; what was written."""
    from safetensors.torch import save_file

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty; choose a new folder")
    record = store.get_version(version_id)
    manifest = manifest_of(store, version_id)
    if manifest.get("experts"):  # refuser experts: one folder each, and the switch
        if fmt == "merged":
            raise ExportError(
                f"version {version_id} is a routed version: its experts are switched on per "
                "query, so they cannot be merged into the weights; export it as peft (one "
                "folder per expert and a Router)"
            )
        return export_routed(deployment, store, version_id, out)
    tensors, config = combine(adapters(manifest, store.artifacts, f"version {version_id}"))
    base = str(deployment.model_dir.resolve())
    out.mkdir(parents=True, exist_ok=True)
    lm_only = language_model_only(config["target_modules"])
    info = {"version": version_id, "format": fmt, "base_model": base, "method": record.method,
            "rank": config["r"], "target_modules": len(config["target_modules"]),
            "language_model_only": lm_only}  # fmt: skip
    if fmt == "peft":
        config = {**config, "base_model_name_or_path": base, "peft_type": "LORA"}
        save_file(tensors, out / WEIGHTS_FILE, metadata={"format": "pt"})
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    else:
        fam = deployment.load_base()
        merge(fam.model, tensors)
        fam.save(out)
    (out / "unlearnd-version.json").write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "out": str(out)}


@torch.no_grad()
def merge(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Add a combined LoRA's B A (scale 1) to the base weights of `model` in place."""
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = model.get_submodule(key.removeprefix(_PREFIX).removesuffix(".lora_A.weight"))
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        weight = module.weight
        weight.add_((b.float() @ a.float()).to(weight.dtype))


def export_routed(
    deployment: Deployment, store: RegistryStore, version_id: int, out: Path
) -> dict[str, Any]:
    """Write a routed version's experts and switch to the new folder `out` (the layout is in
    serving/router.py, which reads it)."""
    from safetensors.torch import save_file

    manifest, artifacts = manifest_of(store, version_id), store.artifacts
    if any(k for k in manifest["artifacts"] if not k.startswith(CONCEPTS_PREFIX)):
        raise ExportError(
            f"version {version_id} has method adapters beneath its experts (always on): no "
            "multi-LoRA server applies both; serve it with `unlearnd api`"
        )
    tasks = [(k, artifacts.load_tensors(sha), artifacts.load_metadata(sha))
             for k, sha in sorted(manifest["artifacts"].items())]  # fmt: skip
    fam = deployment.load_base()
    centers = deployment.centers(fam)
    base = str(deployment.model_dir.resolve())
    out.mkdir(parents=True, exist_ok=True)
    experts, targets = {}, []
    for expert, sha in sorted(manifest["experts"].items()):
        config = json.loads(artifacts.load_metadata(sha).get("config", "{}"))
        targets += config.get("target_modules", [])
        folder = out / "experts" / expert
        folder.mkdir(parents=True)
        config = {**config, "base_model_name_or_path": base, "peft_type": "LORA"}
        save_file(artifacts.load_tensors(sha), folder / WEIGHTS_FILE, metadata={"format": "pt"})
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        experts[expert] = f"experts/{expert}"
    (out / "routing").mkdir()
    visual = np.zeros(0, np.float32) if centers.visual is None else centers.visual  # text-only
    save_file({"visual": torch.from_numpy(visual.astype(np.float32)),
               "textual": torch.from_numpy(centers.textual.astype(np.float32))},
              out / "routing" / "centers.safetensors",
              metadata={"visual_vector": centers.visual_vector})  # fmt: skip
    files = []
    for key, tensors, meta in tasks:
        name = f"routing/{key.removeprefix(CONCEPTS_PREFIX)}.safetensors"
        save_file(tensors, out / name, metadata=meta)
        files.append(name)
    r = deployment.settings.routing
    doc = {
        "format": ROUTED_FORMAT, "version": version_id, "base_model": base, "experts": experts,
        "tasks": files, "routed_answer": r.routed_answer, "refusals": deployment.settings.refusals,
        "target_types": manifest.get(TARGET_TYPES) or {},
        "switch": {"a": r.relevance_a, "b": r.relevance_b, "mode": r.gate,
                   "threshold": r.hard_threshold, "text_door": r.text_door},
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(doc, indent=2) + "\n")
    return {"version": version_id, "format": "routed", "base_model": base,
            "experts": sorted(experts), "requests": len(files), "out": str(out),
            "language_model_only": language_model_only(targets)}  # fmt: skip
