"""The CORE-style refuser expert: the method and its concept-aware refusal texts."""

from unlearnd.methods.refuser.method import Refuser, RefuserParams

__all__ = ["Refuser", "RefuserParams"]
