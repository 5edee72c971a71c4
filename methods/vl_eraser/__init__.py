"""VL-Eraser: the method and the parallel FFN branches it subtracts with (`ffn_branch`)."""

from unlearnd.methods.vl_eraser.method import VLEraser, VLEraserParams

__all__ = ["VLEraser", "VLEraserParams"]
