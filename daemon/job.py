"""One job's inputs, read once: the request's samples with their images, what the method
trains against, and the sets its candidate and parent are scored on.

Every step of the pipeline takes this value; none reads the request again. What differs
between deployments is decided here, by the model's family and the request's kind, never by
the method's name:
- a vision-language model answers questions: a share of the forget images and wordings is
  held out, and the candidate is scored on them, on every other door the request opens
  (evaluation/doors.py), on held-out retain and general pool rows, and on the deployment's
  own probes about the named target (evaluation/candidate.py);
- a CLIP classifies images and takes domain requests: scored per domain on held-out pool
  images plus the request's own (evaluation/domains.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearnd.daemon.pipeline import Permanent, WorkItem
from unlearnd.daemon.request_store import open_image
from unlearnd.daemon.schema import RequestV1
from unlearnd.evaluation.candidate import AnswerSets
from unlearnd.evaluation.domains import DomainSets
from unlearnd.evaluation.doors import asked_for_facts, door_probes, split_forget, text_variants
from unlearnd.evaluation.refusal_match import with_english
from unlearnd.methods import Method, MethodParams, get_method
from unlearnd.models import Sample
from unlearnd.models.loading import CLASSES
from unlearnd.refusals import RefusalTable, TargetType, target_type
from unlearnd.serving import Deployment, DeploymentError
from unlearnd.text import normalise

Evaluation = AnswerSets | DomainSets


class RequestMismatch(Permanent, ValueError):
    """The request does not fit the deployment's model (its kind or its method)."""


@dataclass(frozen=True)
class JobInputs:
    item: WorkItem
    method: Method
    params: MethodParams
    forget: list[Sample]
    retain: list[Sample]  # what the method trains against
    evaluation: Evaluation  # how the parent and the candidate are scored

    @property
    def request(self) -> RequestV1:
        return self.item.request

    @property
    def request_id(self) -> str:
        return self.item.request_id

    @property
    def target_type(self) -> TargetType:
        return target_type(self.request.kind, self.request.target.type)


def check_fits(kind: str, method: Method, family: str, images: bool = False) -> None:
    """A CLIP classifies images: it takes domain requests only, and only a domain request
    needs one. A text-only model takes no images (`images`: the request has some). The method
    must support the family (checked here, not after loading)."""
    if images and not CLASSES[family].takes_images:
        raise RequestMismatch(
            f"this deployment serves a {family} model, which takes text only: leave `image` "
            "out of the request's samples"
        )
    if kind == "domain" and family != "clip":
        raise RequestMismatch(
            f"a domain request needs a CLIP deployment; this one serves a {family} model"
        )
    if family == "clip" and kind != "domain":
        raise RequestMismatch(f"a CLIP deployment takes domain requests only, not {kind!r}")
    if family not in method.families:
        raise RequestMismatch(
            f"method {method.name!r} supports {', '.join(method.families)}, "
            f"not this deployment's {family} model"
        )


def has_images(req: RequestV1) -> bool:
    return any(s.image is not None for s in [*req.forget, *(req.retain or [])])


def without_concept(pool: list[Sample], kind: str, forget: list[Sample]) -> list[Sample]:
    """A concept request's own answers are what it forgets: pool samples that answer with
    them (a giraffe picture in a pool of every class) are neither kept nor scored as kept."""
    if kind != "concept":
        return pool
    gone = {normalise(s.answer) for s in forget}
    return [s for s in pool if normalise(s.answer) not in gone]


def load_inputs(item: WorkItem, deployment: Deployment) -> JobInputs:
    req = item.request
    method = get_method(req.method or item.settings.daemon.default_method)
    defaults = item.settings.methods.get(method.name, {})  # under the request's own params
    given = {**defaults, **req.params}
    if "refusals" in method.Params.model_fields:  # the deployment's refusal set beneath
        given["refusals"] = {**item.settings.refusals, **defaults.get("refusals", {}),
                             **req.params.get("refusals", {})}  # fmt: skip
    if "target_type" in method.Params.model_fields:  # whom its refusals speak of
        given["target_type"] = target_type(req.kind, req.target.type)
    params = method.validate_params(given)
    check_fits(req.kind, method, deployment.family, has_images(req))
    forget = [Sample(s.question, s.answer, open_image(item.folder, s), tuple(s.facts))
              for s in req.forget]  # fmt: skip
    own_retain = [Sample(s.question, s.answer, open_image(item.folder, s), tuple(s.facts))
                  for s in (req.retain or [])]  # fmt: skip
    if deployment.family == "clip":
        retain, evaluation = _domain_sets(deployment, forget, own_retain)
        return JobInputs(item, method, params, forget, retain, evaluation)
    names = req.target.names
    split = split_forget(forget)  # a share of the images (or questions) is never trained on
    texts = text_variants(split.train, names) if method.needs.text_variants else []
    retain = own_retain or without_concept(deployment.retain_pool("train"), req.kind, forget)
    kept = without_concept(deployment.retain_pool("eval"), req.kind, forget)
    sets = door_probes(split, names, texts)  # "forget": the held-out pictures or questions
    sets.update(retain=kept, general=deployment.general_pool())
    # How often the parent states the target's facts about unrelated samples: chance.
    sets["unrelated"] = [u for s in kept for u in asked_for_facts(s.question, forget, names,
                                                                 s.image)]  # fmt: skip
    # The deployment's own probes about the target, less any the method trains on.
    trained = {normalise(s.question) for s in texts}
    for name, probes in deployment.probe_sets([*names, *(s.answer for s in forget)]).items():
        fresh = [p for p in probes if p.image is not None or normalise(p.question) not in trained]
        sets[name] = [*sets.get(name, []), *fresh]
    # Refusals are told by the deployment's set and the product's plain-English ones.
    refusals = with_english(RefusalTable(item.settings.refusals).texts())
    evaluation = AnswerSets(sets, names, refusals, forget, deployment.retain_rows())
    return JobInputs(item, method, params, [*split.train, *texts], retain, evaluation)


def _domain_sets(
    deployment: Deployment, forget: list[Sample], own_retain: list[Sample]
) -> tuple[list[Sample], DomainSets]:
    """A domain request: trained against the kept domains' rows, scored on every domain."""
    gone = sorted({s.question for s in forget})
    # The pool holds every domain: the forgotten ones' rows are scored, never kept.
    pool_train = [s for s in deployment.retain_pool("train") if s.question not in gone]
    retain = own_retain or pool_train
    if not retain:
        raise DeploymentError(
            "a domain request needs images of the kept domains: give `retain` or "
            "configure the deployment's model.retain_pool"
        )
    # Held-out pool images of every domain plus the request's own: the forgotten domains'
    # unseen images say whether the forgetting generalises beyond the forget set.
    evaluation = [*deployment.retain_pool("eval"), *forget, *own_retain]
    classes = list(dict.fromkeys(s.answer for s in [*forget, *retain, *evaluation]))
    return retain, DomainSets(evaluation, classes, gone)
