"""CAGUL: the method and its external visual-token rewriter (`visual_tokens`)."""

from unlearnd.methods.cagul.method import CAGUL, CAGULParams, mean_tokens

__all__ = ["CAGUL", "CAGULParams", "mean_tokens"]
