"""The request schema `unlearnd.request/v1` and field-level error reporting.

The schema is strict: unknown fields are errors and values are not coerced ("5" is not a
priority), so a producer learns about a mistake instead of getting a surprising request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

SCHEMA_V1 = "unlearnd.request/v1"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class FieldError:
    field: str  # e.g. "forget[3].image"; "" for the document as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class RequestError(ValueError):
    """The input is not a valid request; `errors` names every bad field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    @classmethod
    def one(cls, field: str, message: str) -> RequestError:
        return cls([FieldError(field, message)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Sample(_Strict):
    """One forget or retain example; `image` is a path inside the bundle (None: text only).
    `facts`: what an answer must say to count as stating it ("Hogwarts"); without them a
    short `answer` is the fact, and a sentence is compared with the parent's own answer
    (evaluation/metrics.py `stated`)."""

    image: str | None = None
    question: str = Field(min_length=1, max_length=10_000)
    answer: str = Field("", max_length=10_000)
    facts: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=50
    )


class Target(_Strict):
    name: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=10_000)
    # Other names the target goes by: a question naming any of them is about the target.
    aliases: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, max_length=50
    )
    # Whom refusals speak of: a person ("this person"), or a thing (a book series, a place,
    # an object class: "that"). Absent: a person for an entity or samples request, a thing
    # for a concept or domain request (core/refusals.py `target_type`).
    type: Literal["person", "thing"] | None = None

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class RequestV1(_Strict):
    schema_: Literal["unlearnd.request/v1"] = Field(alias="schema")
    id: str | None = None
    kind: Literal["entity", "concept", "domain", "samples"]
    target: Target
    # A list of samples, or the name of a JSONL file inside the bundle (one sample a line).
    forget: list[Sample] | str
    retain: list[Sample] | str | None = None
    method: str | None = Field(None, min_length=1, max_length=100)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    gate: dict[str, JsonValue] | None = None
    requested_by: str | None = Field(None, max_length=500)
    reason: str | None = Field(None, max_length=10_000)
    priority: int = Field(0, ge=-1000, le=1000)
    # Submitting a reverted, gated or failed request again on purpose: its id (a new request
    # is made, linked to it; an identical file dropped twice is still one request).
    supersedes: str | None = None

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("id", "supersedes")
    @classmethod
    def _id_is_a_safe_name(cls, value: str | None) -> str | None:
        if value is not None and not ID_PATTERN.match(value):
            raise ValueError("must be 1-64 characters of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("params", "gate")
    @classmethod
    def _finite_numbers(cls, value: Any) -> Any:
        if _has_non_finite(value):
            raise ValueError("NaN and Infinity are not allowed")
        return value

    @field_validator("forget")
    @classmethod
    def _forget_not_empty(cls, value: list[Sample] | str) -> list[Sample] | str:
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one sample")
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a list of samples or a JSONL file name")
        return value

    def document(self) -> dict[str, Any]:
        """The request as a plain JSON document, with the `schema` key as producers write it."""
        doc = self.model_dump(mode="json", by_alias=True)
        for key in ("aliases", "type"):  # absent, as before they existed: same hash
            if not doc["target"][key]:
                del doc["target"][key]
        for samples in (doc["forget"], doc["retain"]):  # likewise a sample's empty facts
            for sample in samples if isinstance(samples, list) else []:
                if not sample["facts"]:
                    del sample["facts"]
        if doc["supersedes"] is None:  # likewise
            del doc["supersedes"]
        return doc


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


_UNION_TAGS = ("str", "none", "int", "float", "bool", "list", "dict")


def _is_tag(part: Any) -> bool:
    """pydantic puts union branch names into loc ('list[Sample]', 'str'); they are not fields."""
    text = str(part)
    return text in _UNION_TAGS or "[" in text or text.startswith("function-")


def field_path(loc: tuple[Any, ...]) -> str:
    """pydantic's loc ('forget', 'list[Sample]', 3, 'image') as 'forget[3].image'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_tag(part):
            out += ("." if out else "") + str(part)
    return out


def errors_from_validation(err: ValidationError, prefix: str = "") -> list[FieldError]:
    raw = err.errors()
    # A list that failed inside shows also as "not a valid string" for the file-name branch:
    # that second message is noise once the list branch has said what is wrong.
    deep = {e["loc"][0] for e in raw if len(e["loc"]) > 2 and e["loc"][1] == "list[Sample]"}
    seen: dict[str, list[str]] = {}
    for e in raw:
        loc = tuple(e["loc"])
        if loc and loc[0] in deep and len(loc) == 2 and loc[1] in ("str", "none"):
            continue
        path = field_path(loc)
        if prefix:
            path = prefix + (path if path.startswith("[") or not path else "." + path)
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        msgs = seen.setdefault(path, [])
        if msg not in msgs:
            msgs.append(msg)
    return [FieldError(path, " / ".join(msgs)) for path, msgs in seen.items()]


def parse_request(document: Any) -> RequestV1:
    """Validate a loaded JSON/YAML document; RequestError names every bad field."""
    if not isinstance(document, dict):
        raise RequestError.one("", f"the request must be a mapping, not {type(document).__name__}")
    if "schema" not in document:
        raise RequestError.one("schema", f"required field is missing (use {SCHEMA_V1!r})")
    if document["schema"] != SCHEMA_V1:
        raise RequestError.one(
            "schema", f"unsupported schema {document['schema']!r}; expected {SCHEMA_V1!r}"
        )
    if "schema_" in document:
        raise RequestError.one("schema_", "unknown field")
    try:
        return RequestV1.model_validate(document)
    except ValidationError as e:
        raise RequestError(errors_from_validation(e)) from None


def parse_sample(raw: Any, where: str) -> Sample:
    try:
        return Sample.model_validate(raw)
    except ValidationError as e:
        raise RequestError(errors_from_validation(e, prefix=where)) from None
