"""unlearnd: remove knowledge from a served vision-language model, keep every version."""

__version__ = "0.1.0"
