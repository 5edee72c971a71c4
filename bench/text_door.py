"""The text door on the world, per way of naming a deleted person (issue 29).

Deletes `--people` forgotten people one after another through the real daemon (the
deployment's defaults), then asks, with no image, each person's facts in every textual
wording: by full name, surname, first name, initial + surname, title + surname, a one-letter
misspelling, the name run together (evaluation/name_variants.py). Per door: the share of the
facts the parent (base) states that the live version still states (`kept`, target <= 5%).
False refusals: retained people by name, retained people who share a first name or surname
with a deleted person (their full name with it swapped in), general scene questions: of the
parent's right answers (its own answer states the fact asked, and names no deleted person:
one that does took the person asked about for the target), the share lost (target <= 2%;
None, "not measurable", where the parent answered none right), and the share routed at all.
Cost: routing a query (with its text key) as a share of generating its answer, timed on the
same questions.

    OMP_NUM_THREADS=1 .venv/bin/python bench/text_door.py [--people 3] [--out FILE]

With `--model DIR` (a user's folder, e.g. SmolLM2's): routing per door on real entities
instead (bench/text_door_model.py), results in bench/results/text_door_<folder>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_door_model  # noqa: E402
from routing_world import WorldDeployment  # noqa: E402

from unlearnd.evaluation import metrics  # noqa: E402
from unlearnd.evaluation.name_variants import variants  # noqa: E402
from unlearnd.models import Sample  # noqa: E402
from unlearnd.routing.answer_check import AnswerCheck  # noqa: E402
from unlearnd.routing.text_door import KEY, KEYS  # noqa: E402
from unlearnd.serving import Deployment, load_version  # noqa: E402
from unlearnd.serving.providers import set_default_provider  # noqa: E402
from unlearnd.text import mentions  # noqa: E402
from unlearnd.world import questions as q  # noqa: E402
from unlearnd.world.deployment import provide  # noqa: E402
from unlearnd.world.people import FACT_CATEGORIES  # noqa: E402

set_default_provider(provide)
FIRST = 23  # forget_pids[23:]: people no test deletes


def asked(person, name: str) -> list[Sample]:
    """Every textual wording of every fact about `person`, naming them `name`."""
    return [Sample(t.format(name=name), person.facts[c]) for c in FACT_CATEGORIES
            for t in q.TEXTUAL[c]]  # fmt: skip


def stated(model, samples: list[Sample]) -> list[bool]:
    said = model.generate(samples, max_new_tokens=16)
    return [metrics.answer_match(a, s.answer) for a, s in zip(said, samples, strict=True)]


def checked(model, samples: list[Sample]) -> float:
    """The share of answers the answer check caught (routing/answer_check.py)."""
    by = [b for _, _, b in model.answers(samples, max_new_tokens=16)]
    return round(by.count("answer check") / max(1, len(samples)), 4)


def routed(model, samples: list[Sample]) -> float:
    return sum(bool(r) for r in model.routes(samples)) / max(1, len(samples))


def check_at_scale(answers: list[str], n: int = 1_000_000) -> float:
    """Seconds per answer of the answer check over `n` requests of two tells each (a name
    and a fact): one table lookup per word n-gram, whatever `n` is."""
    check = AnswerCheck([(f"name{i} surname{i}", f"fact{i}") for i in range(n)])
    t0 = time.perf_counter()
    for text in answers:
        check.told(text)
    return (time.perf_counter() - t0) / len(answers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--model", default=None, help="a model folder: routing on real entities")
    ap.add_argument("--key", default=KEY, choices=KEYS, help="the text key (--model only)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/unlearnd-text-door"))
    ap.add_argument("--meaning-door", choices=("on", "off"), default=None,
                    help="routing.meaning_door (default: the deployment's)")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.model:
        name = Path(args.model).name
        out = args.out or f"bench/results/text_door_{name}.json"
        text_door_model.run(args.model, args.key, Path(out), args.work / name)
        return
    args.out = args.out or "bench/results/text_door.json"
    d = WorldDeployment(Path(tempfile.mkdtemp()), eval_samples=32)
    if args.meaning_door:
        d.settings.routing.meaning_door = args.meaning_door == "on"
    w = d.world
    pids = w.forget_pids[FIRST : FIRST + args.people]
    for pid in pids:
        d.delete(f"p{pid}", pid)
    live = d.daemon.version()
    print("requests with a text door:", len(live.switch.meaning), flush=True)
    base = load_version(Deployment(d.settings), d.store, None)
    doors: dict[str, list[Sample]] = {}
    for pid in pids:
        p = w.people[pid]
        doors.setdefault("full", []).extend(asked(p, p.name))
        for kind, forms in variants([p.name]).items():
            doors.setdefault(kind, []).extend(s for f in forms for s in asked(p, f))
    doors["first_lower_case"] = [Sample(s.question.lower(), s.answer) for s in doors["first"]]
    out: dict = {"people": [w.people[p].name for p in pids], "doors": {}, "false_refusal": {}}
    for door, samples in doors.items():
        before, after = stated(base, samples), stated(live, samples)
        answered = sum(before)
        kept = sum(b and a for b, a in zip(before, after, strict=True))
        out["doors"][door] = {"n": len(samples), "parent_states": answered,
                              "kept": round(kept / answered, 4) if answered else None,
                              "routed": round(routed(live, samples), 4),
                              "answer_check": checked(live, samples)}  # fmt: skip
        print(door, out["doors"][door], flush=True)
    retained = [w.people[p] for p in w.retain_pids[:12]]
    deleted = [w.people[p] for p in pids]
    sharing = [s for i, o in enumerate(retained[:8]) for s in
               asked(o, f"{deleted[i % len(deleted)].first} {o.last}")]  # fmt: skip
    sharing_last = [s for i, o in enumerate(retained[:8]) for s in
                    asked(o, f"{o.first} {deleted[i % len(deleted)].last}")]  # fmt: skip
    general = [w.sample(it) for it in w.general_items(w.eval_scene_indices()[:20])]
    sets = {"retained_by_name": [s for o in retained for s in asked(o, o.name)],
            "retained_pictures": [w.sample(it) for it in w.items("seen_qa", w.retain_pids[:12])],
            "shares_first_name": sharing, "shares_surname": sharing_last,
            # typed in lower case: the name gives no sign of being another person's
            "shares_first_name_lower_case": [Sample(s.question.lower(), s.answer)
                                             for s in sharing],
            "general": general}  # fmt: skip
    for name, samples in sets.items():
        drafts = base.generate(samples, max_new_tokens=16)
        # A parent's answer that names a deleted person is about that person, not the one
        # asked about (the parent took a namesake for the target): no right answer to lose,
        # even where the namesake's fact happens to be the target's.
        took = [any(mentions(a, p.name) for p in deleted) for a in drafts]
        before = [metrics.answer_match(a, s.answer) and not t
                  for a, s, t in zip(drafts, samples, took, strict=True)]  # fmt: skip
        after = stated(live, samples)
        lost = sum(b and not a for b, a in zip(before, after, strict=True))
        out["false_refusal"][name] = {"n": len(samples), "routed": round(routed(live, samples), 4),
                                      "answer_check": checked(live, samples),
                                      "parent_named_the_target": sum(took),
                                      "parent_answered": sum(before),
                                      "lost": round(lost / sum(before), 4) if any(before)
                                      else None}  # fmt: skip
        print(name, out["false_refusal"][name], flush=True)
    probe = sets["retained_by_name"] + general
    for _ in range(2):  # warm up, then time
        t0 = time.perf_counter()
        live.routes(probe)
        t_route = time.perf_counter() - t0
        t0 = time.perf_counter()
        base.fam.generate(probe, max_new_tokens=16)
        t_gen = time.perf_counter() - t0
    said = live.generate(probe, max_new_tokens=16)
    t0 = time.perf_counter()
    for text in said:
        live.switch.told(text)
    t_check = time.perf_counter() - t0
    out["cost"] = {"route_s_per_query": t_route / len(probe),
                   "generate_s_per_query": t_gen / len(probe),
                   "share_of_generation": round(t_route / t_gen, 4),
                   "answer_check_s_per_query": t_check / len(probe),
                   "answer_check_s_per_query_1e6_requests": check_at_scale(said)}  # fmt: skip
    out["routing"] = [v.metrics.get("routing", {}).get("text_calibration", {})
                      for v in d.store.list_versions() if v.request_id]  # fmt: skip
    for r in out["routing"]:
        r.pop("own", None), r.pop("background", None)
    print(out["cost"], out["routing"])
    Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
