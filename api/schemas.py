"""Bodies the API accepts (its responses are the registry's own records, as JSON)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class RollbackBody(_Body):
    to: int = Field(ge=1, description="The version the alias goes back to.")
    why: str = Field(min_length=1, description="Kept in the alias history.")
    alias: str = "live"
    who: str | None = Field(None, max_length=100, description="Recorded with the client address.")


class RevertBody(_Body):
    why: str = Field(min_length=1, description="Kept in the alias history.")
    alias: str = "live"
    who: str | None = Field(None, max_length=100)


class GenerateBody(_Body):
    prompt: str = Field(min_length=1, max_length=10_000)
    image: str | None = Field(None, description="The image file's bytes, base64-encoded.")
    version: int | None = Field(None, ge=1, description="Default: the live version.")
    max_new_tokens: int = Field(32, ge=1, le=512)


class ClassifyBody(_Body):
    image: str = Field(description="The image file's bytes, base64-encoded.")
    labels: list[str] = Field(min_length=1, max_length=1000)
    template: str = Field("a photo of a {}.", description="Prompt per label; {} is the label.")
    version: int | None = Field(None, ge=1, description="Default: the live version.")

    @field_validator("template")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        try:
            value.format("label")
        except (IndexError, KeyError, ValueError):
            raise ValueError("must contain one '{}' for the label and no other braces") from None
        if "{}" not in value:
            raise ValueError("must contain '{}' where the label goes")
        return value
