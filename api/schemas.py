"""Bodies the API accepts (its responses are the registry's own records, as JSON)."""

from __future__ import annotations

import re
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# PostgreSQL's `integer`, the type of the registry's ids: a larger number would overflow in
# the database (a 500), so every id, limit and offset the API takes is bounded by it. A route
# takes them with a plain default (`limit: Limit = 50`): FastAPI drops these bounds when the
# default is `Query(...)`; `Annotated[Id | None, Query(...)] = None` keeps them.
DB_INT_MAX = 2**31 - 1
Id = Annotated[int, Interval(ge=1, le=DB_INT_MAX)]
Offset = Annotated[int, Interval(ge=0, le=DB_INT_MAX)]
Limit = Annotated[int, Interval(ge=1, le=1000)]


def _json_integer(value: object) -> object:
    """JSON Schema's integer: 5 and 5.0, not true or "5" (pydantic's lax mode takes those,
    its strict mode refuses 5.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be an integer")
    return value


JsonInt = BeforeValidator(_json_integer)  # on every integer of a JSON body
BodyId = Annotated[Id, JsonInt]

# "The bytes of an image" is beyond JSON Schema: the format names it (a fuzzer is taught to
# fill it: tests/fuzz_hooks.py), the content keywords say what it is.
IMAGE = {"format": "image-base64", "contentEncoding": "base64", "contentMediaType": "image/*"}
TEMPLATE = r"^[^{}]*\{\}[^{}]*$"  # one '{}' for the label, no other braces


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Checked with Python's str.strip, whose whitespace is the schema pattern's `\S` (in Python).
NonBlank = Annotated[str, AfterValidator(_not_blank), Field(json_schema_extra={"pattern": r"\S"})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class RollbackBody(_Body):
    to: BodyId = Field(description="The version the alias goes back to.")
    why: NonBlank = Field(description="Kept in the alias history.")
    alias: NonBlank = Field("live", max_length=200)
    who: str | None = Field(None, max_length=100, description="Recorded with the client address.")


class RevertBody(_Body):
    why: NonBlank = Field(description="Kept in the alias history.")
    alias: NonBlank = Field("live", max_length=200)
    who: str | None = Field(None, max_length=100)


class GenerateBody(_Body):
    prompt: str = Field(min_length=1, max_length=10_000)
    image: str | None = Field(
        None, min_length=1, description="The image file's bytes, base64.", json_schema_extra=IMAGE
    )
    version: BodyId | None = Field(None, description="Default: the live version.")
    max_new_tokens: Annotated[int, JsonInt] = Field(32, ge=1, le=512)


class ClassifyBody(_Body):
    image: str = Field(
        min_length=1, description="The image file's bytes, base64.", json_schema_extra=IMAGE
    )
    labels: list[str] = Field(min_length=1, max_length=1000)
    template: str = Field(
        "a photo of a {}.",
        description="Prompt per label; {} is the label.",
        json_schema_extra={"pattern": TEMPLATE},
    )
    version: BodyId | None = Field(None, description="Default: the live version.")

    @field_validator("template")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        if not re.fullmatch(TEMPLATE, value):
            raise ValueError("must contain one '{}' for the label and no other braces")
        return value
