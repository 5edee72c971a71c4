"""The text door on a user's model folder (issue 29): which questions turn a request's expert on.

For each entity of `--entities` (bench/real/entities.json: SmolLM2-135M-Instruct's), builds
the request's text door as the daemon does (daemon/text_door.py: its forget questions by name
and generated name variants against the deployment's retain and general pools, here
bench/real/retain.jsonl and general.jsonl with the model's own answers), puts it in the
expert switch with the request's names, and asks the entity's probes per door (partial name,
misspelling, other language, description, wrapper). A routed question gets the expert (the
refuser), so routing decides leaks; no expert is trained here (bench/real.py runs the daemon
end to end). Per door: `routed` (by name or meaning, what the switch does),
`by_meaning` (the text key alone), `answer_check` (the base model's draft answer names the
target or states its facts: routing/answer_check.py), `held` (routed or caught), and
`name_or_check` (what holds without the door by meaning: exact name or answer check).
False refusals (the same shares): the calibration pools' questions, retained questions held
out of them, other people and places that share a name word or a city with a target
(NEIGHBOURS), general questions held out (GENERAL). Cost: the keys of 32 questions as a share
of generating 32 tokens for them.

    OMP_NUM_THREADS=1 .venv/bin/python bench/text_door.py --model /work/smol/causal_lm \
        [--key prompt_state|answer_distribution] [--out bench/results/text_door_smollm2.json]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from unlearnd.config import ModelSettings, Settings
from unlearnd.daemon.text_door import answer_tells, text_door
from unlearnd.evaluation.candidate import answers
from unlearnd.models import Sample, load
from unlearnd.routing.answer_check import AnswerCheck, Scope
from unlearnd.routing.concepts import Centers
from unlearnd.routing.switch import ExpertSwitch, SwitchSettings
from unlearnd.routing.tasks import Task
from unlearnd.routing.text_door import text_keys
from unlearnd.serving import Deployment

DATA = Path(__file__).resolve().parent / "real"
EVAL_SAMPLES = 24  # per pool, as bench/real.py: the pools a request is calibrated against
# Not in the pools: share a first name or surname with a target, or its city.
NEIGHBOURS = {
    "Albert Einstein": ["What did Albert Camus write?", "What is Albert Camus famous for?",
                        "What is Albert Schweitzer known for?", "Who was Albert Hofmann?",
                        "Who is Alfred Einstein?"],
    "Harry Potter": ["What band was Harry Styles in?", "What was Harry Houdini famous for?",
                     "Who was Harry Truman?", "Who is Prince Harry?", "Who is Beatrix Potter?",
                     "What did Beatrix Potter write?", "Who is Ron Weasley?"],
    "Eiffel Tower": ["Who was Gustave Eiffel?", "What is Paris famous for?",
                     "Where is the Leaning Tower of Pisa?", "Where is the Tower of London?",
                     "Where is the Empire State Building?", "What river flows through Paris?"],
}  # fmt: skip
GENERAL = [
    "What is the capital of Canada?", "How many sides does a triangle have?",
    "What is the speed of light?", "Who wrote Romeo and Juliet?",
    "What is the largest desert in the world?", "How do airplanes fly?", "What is DNA?",
    "What is the tallest animal?", "Why is the sea salty?", "What is gravity?",
    "How many bones are in the human body?", "What is the currency of Japan?",
    "Write a haiku about autumn.", "What is machine learning?", "How do I bake a cake?",
    "What causes rain?", "Who painted The Starry Night?",
    "What is the biggest city in the United States?", "What is the smallest prime number?",
    "Translate hello into Spanish.",
]  # fmt: skip


def answered(fam, source: Path, out: Path) -> Path:
    """The pool's questions with the model's own answers (once per work folder)."""
    if not out.is_file():
        rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
        said = answers(fam, [Sample(r["question"]) for r in rows])
        out.write_text("".join(json.dumps({**r, "answer": a}) + "\n"
                               for r, a in zip(rows, said, strict=True)))  # fmt: skip
    return out


def share(xs) -> float:
    return round(float(np.mean(xs)), 4) if len(xs) else None


def run(model: str, key: str, out: Path, work: Path) -> dict:
    fam = load(model, device="cpu", dtype="float32")
    work.mkdir(parents=True, exist_ok=True)
    pools = {f"{p}_pool": str(answered(fam, DATA / f"{p}.jsonl", work / f"{p}.jsonl"))
             for p in ("retain", "general")}  # fmt: skip
    settings = Settings(
        workdir=work / "w", model=ModelSettings(path=model, eval_samples=EVAL_SAMPLES, **pools)
    )
    deployment = Deployment(settings)
    pooled = {s.question for s in [*deployment.retain_pool("eval"), *deployment.general_pool()]}
    retain = [json.loads(x)["question"] for x in (DATA / "retain.jsonl").read_text().split("\n")
              if x.strip()]  # fmt: skip
    sets = {"pools": sorted(pooled), "retained_held_out": [q for q in retain if q not in pooled],
            "general_held_out": GENERAL}  # fmt: skip
    entities = json.loads((DATA / "entities.json").read_text())["entities"]
    asked_all = [*(q for qs in sets.values() for q in qs), *(q for qs in NEIGHBOURS.values()
                 for q in qs), *(p["question"] for e in entities for ps in e["probes"].values()
                 for p in ps)]  # fmt: skip
    asked_all = list(dict.fromkeys(asked_all))
    print(f"drafting the base model's answers to {len(asked_all)} questions", flush=True)
    drafts = dict(zip(asked_all, answers(fam, [Sample(q) for q in asked_all]), strict=True))
    result: dict = {"model": model, "key": key, "entities": {}, "doors": {}, "false_refusal": {}}
    for e in entities:
        names = [e["name"], *e.get("aliases", [])]
        forget = [Sample(f["question"], "", None, tuple(f["facts"])) for f in e["forget"]]
        t0 = time.perf_counter()
        door = text_door(fam, "entity", names, forget, deployment, key=key)
        none = np.zeros((0, 1), np.float32)  # a text-only request: no image prototypes
        task = Task("r", "e", e["name"], none, none, names=tuple(names), **door.task_fields())
        switch = ExpertSwitch([task], Centers(None, np.zeros(1, np.float32)), SwitchSettings())
        told = answer_tells("entity", names, forget, deployment)
        scoped = Scope(told["scope"], told["scoped"], tuple(names), told["frame"])
        check = AnswerCheck([told["tells"]], [scoped])

        def routed(questions: list[str], switch=switch, task=task, check=check) -> tuple:
            """(routed by the switch, by the text key alone, caught by the answer check from
            the base model's draft) per question."""
            keys = {key: text_keys(fam, questions, key)}
            both = [bool(b) for b in switch.route(None, questions, keys)]
            cos = switch.text_cosines(keys, len(questions))[:, 0]
            caught = [bool(check.told(drafts[q], q)) for q in questions]
            return both, [bool(c > 0 and c >= task.text_threshold) for c in cos], caught

        row = {
            "calibration": door.calibration.to_dict(),
            "door_s": round(time.perf_counter() - t0),
            "tells": list(check.table),
            "scope": list(told["scope"]),
            "scoped": list(told["scoped"]),
        }
        asked = {door_: [p["question"] for p in ps] for door_, ps in e["probes"].items()}
        for name, questions in [*asked.items(), *sets.items(),
                                ("neighbours", NEIGHBOURS.get(e["name"], []))]:  # fmt: skip
            both, meaning, caught = routed(questions)
            held = [b or c for b, c in zip(both, caught, strict=True)]
            by_name = [b and not m for b, m in zip(both, meaning, strict=True)]
            row[name] = {"n": len(questions), "routed": share(both), "answer_check": share(caught),
                         "held": share(held)}  # fmt: skip
            where = result["doors"] if name in asked else result["false_refusal"]
            where.setdefault(name, {"routed": [], "by_meaning": [], "answer_check": [],
                                    "held": [], "name_or_check": []})  # fmt: skip
            where[name]["routed"] += both
            where[name]["by_meaning"] += meaning
            where[name]["answer_check"] += caught
            where[name]["held"] += held
            where[name]["name_or_check"] += [n or c for n, c in zip(by_name, caught, strict=True)]
        result["entities"][e["name"]] = row
        print(e["name"], row, flush=True)
    for part in ("doors", "false_refusal"):
        result[part] = {k: {"n": len(v["routed"]), **{m: share(x) for m, x in v.items()}}
                        for k, v in result[part].items()}  # fmt: skip
    probe = [Sample(q) for q in [*sets["retained_held_out"], *GENERAL][:32]]
    for _ in range(2):  # warm up, then time
        t0 = time.perf_counter()
        text_keys(fam, [s.question for s in probe], key)
        t_key = time.perf_counter() - t0
        t0 = time.perf_counter()
        fam.generate(probe, max_new_tokens=32)
        t_gen = time.perf_counter() - t0
    result["cost"] = {"key_s_per_query": round(t_key / len(probe), 4),
                      "generate32_s_per_query": round(t_gen / len(probe), 4),
                      "share_of_generation": round(t_key / t_gen, 4)}  # fmt: skip
    print(json.dumps({k: result[k] for k in ("doors", "false_refusal", "cost")}, indent=1))
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result
