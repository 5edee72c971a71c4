"""ADU (approximate domain unlearning on CLIP): the method and its deep vision prompts."""

from unlearnd.methods.adu.method import ADU, ADUParams, balanced_batches, mmd2

__all__ = ["ADU", "ADUParams", "balanced_batches", "mmd2"]
