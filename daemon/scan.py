"""`unlearnd gate scan`: how a version's expert switch separates what it forgets from the rest.

Per routed request of the version: its images' cosines (each left out in turn) against the
deployment's background (retain and general pool images), the threshold it is routed with,
the threshold the pools would give it now, and the expected miss and false-fire rates. For
the version as a whole: the share of the background's own questions (picture and text) that
turn any expert on, i.e. would be refused. A request routed with a text door by meaning gets
the same for its questions by name and name variants (daemon/text_door.py): `text`.
"""

from __future__ import annotations

from typing import Any

from unlearnd.config import Settings
from unlearnd.daemon.job import without_concept
from unlearnd.daemon.request_store import load_request, open_image, requests_root
from unlearnd.daemon.text_door import text_door
from unlearnd.methods import suspended
from unlearnd.models import Sample
from unlearnd.registry import RegistryStore
from unlearnd.routing.calibration import calibrate
from unlearnd.routing.concepts import concept_rows, visual_rows
from unlearnd.serving import Deployment, load_version


def scan(settings: Settings, store: RegistryStore, version_id: int | None) -> dict[str, Any]:
    deployment = Deployment(settings)
    model = load_version(deployment, store, version_id)
    out: dict[str, Any] = {"version": version_id, "requests": [], "false_refusal": None}
    if model.switch is None:
        return out
    fam, switch = model.fam, model.switch
    kind, r = switch.centers.visual_vector, settings.routing
    pool = deployment.background()
    with suspended(fam):
        pool_rows = visual_rows(fam, pool, kind)
    for i, task in enumerate(switch.tasks):
        request, folder = load_request(requests_root(settings), task.request_id)
        forget = [Sample(s.question, s.answer, open_image(folder, s)) for s in request.forget]
        row: dict[str, Any] = {
            "request": task.request_id,
            "target": task.label,
            "expert": task.expert_id,
            "image_door": bool(len(task.visual)),
            "tells": list(task.tells),  # the answer check's (routing/answer_check.py)
            "scope": list(task.scope),  # its scoped tells' words and facts
            "scoped": list(task.scoped),
        }
        if row["image_door"]:  # a text-only request has no image door to calibrate
            others = {id(s) for s in without_concept(pool, request.kind, forget)}
            keep = [j for j, s in enumerate(pool) if id(s) in others]
            with suspended(fam):
                rows, images = concept_rows(fam, forget, kind)
            now = calibrate(rows, images, task.visual, pool_rows[keep], switch.centers,
                            r.prototypes, r.relevance_b)  # fmt: skip
            row.update({"threshold": float(switch.thresholds[i]), "calibrated_now": now.threshold,
                        "miss": now.miss, "false_fire": now.false_fire, "own": now.own,
                        "background": now.background})  # fmt: skip
        if task.reads_meaning:
            with suspended(fam):
                door = text_door(fam, request.kind, list(task.all_names), forget, deployment,
                                 key=task.text_key)  # fmt: skip
            if door is not None:
                c = door.calibration
                row["text"] = {
                    "threshold": task.text_threshold, "calibrated_now": c.threshold,
                    "miss": c.miss, "false_fire": c.false_fire, "own": c.own,
                    "background": c.background}  # fmt: skip
        out["requests"].append(row)
    # Every question of the pools, with or without a picture: what a user would be refused.
    asked = [*deployment.retain_pool("eval"), *deployment.general_pool()]
    fired = [bool(b) for b in model.routes(asked)]
    out["false_refusal"] = sum(fired) / len(fired) if fired else None
    out["background_n"] = len(asked)
    return out
