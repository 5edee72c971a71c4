"""The image door's threshold, calibrated per request on the deployment's own data.

A request's threshold t separates two distributions of cosines to its visual prototypes:
- its own images, each left out in turn with every row of it (the prototypes rebuilt from
  the other images): how an unseen picture of the target scores;
- the deployment's background (retain and general pool images, less the request's own
  concept): how everything else scores.
When they do not overlap, t sits just above the background's highest cosine (a tenth of the
gap): a miss states a forgotten fact, a false fire only refuses an answerable question, and
unseen pictures score lower than left-out ones (on the world: up to 0.03 below the lowest
left-out image, so a midpoint missed a person's unseen portrait at 0.951 between a
lookalike at 0.946 and its own images at 0.973 and above). When they overlap, t maximises
recall - false fires. The expected miss rate (own images below t) and false-fire rate
(background at or above t) are what `unlearnd gate scan` shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from unlearnd.routing.concepts import Centers, prototypes

FLOOR = 0.3  # never below: centred cosines this low say little about a shared concept
TOWARD_BACKGROUND = 0.1  # where in the gap between background and own images t sits


@dataclass(frozen=True)
class Calibration:
    threshold: float
    miss: float  # share of the request's own (left-out) images below it
    false_fire: float  # share of the background at or above it
    own: list[float]  # the left-out cosines, for plots
    background: list[float]

    def to_dict(self, with_samples: bool = False) -> dict:
        out = asdict(self)
        if not with_samples:
            del out["own"], out["background"]
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def best_cosines(x: np.ndarray, protos: np.ndarray, centers: Centers) -> np.ndarray:
    """Each row's best centred cosine to the prototypes."""
    if not len(x) or not len(protos):
        return np.zeros(len(x), np.float32)
    return (centers.unit(x, "visual") @ centers.unit(protos, "visual").T).max(1)


def left_out(rows: np.ndarray, images: list, centers: Centers, k: int, seed: int = 0) -> np.ndarray:
    """Each image's best cosine to the prototypes of the request's other images (`images`:
    which image each row is of; every row of the image left out is left out together)."""
    return left_out_by(rows, images, k, lambda x, p: best_cosines(x, p, centers), seed)


def left_out_by(rows: np.ndarray, groups: list, k: int, score, seed: int = 0) -> np.ndarray:
    """Per group: the best `score(rows of the group, prototypes of the other groups' rows)`."""
    out = []
    for key in dict.fromkeys(groups):
        mine = np.array([g == key for g in groups])
        protos = prototypes(rows[~mine], k, seed)
        out.append(score(rows[mine], protos).max())
    return np.asarray(out, np.float32)


def threshold(
    own: np.ndarray, background: np.ndarray, fallback: float, max_fires: float = 1.0
) -> float:
    """`max_fires`: when the two overlap, the largest share of the background the threshold
    may let through (1: no cap, recall - false fires decides alone)."""
    if not len(own):  # one image: nothing to leave out
        return fallback
    lo = float(background.max()) if len(background) else FLOOR
    hi = float(own.min())
    if hi > lo:
        return max(FLOOR, lo + TOWARD_BACKGROUND * (hi - lo))
    candidates = np.unique(np.concatenate([own, background]))
    recall = (own[None, :] >= candidates[:, None]).mean(1)
    fires = (background[None, :] >= candidates[:, None]).mean(1) if len(background) else 0
    gain = np.where(fires <= max_fires, recall - fires, -np.inf)
    if not np.isfinite(gain).any():  # every candidate fires too often: above the background
        return max(FLOOR, lo + 1e-4)
    return max(FLOOR, float(candidates[int(np.argmax(gain))]))


def calibrate(
    rows: np.ndarray,
    images: list,
    protos: np.ndarray,
    background: np.ndarray,
    centers: Centers,
    k: int,
    fallback: float,
    seed: int = 0,
) -> Calibration:
    """The threshold of a request whose images' raw visual vectors are `rows` (`images`: the
    image of each row; prototypes `protos`), against the background's raw visual vectors."""
    distinct = len(set(images))
    own = left_out(rows, images, centers, k, seed) if distinct >= 2 else np.zeros(0, np.float32)
    return summarise(own, best_cosines(background, protos, centers), fallback)


def summarise(
    own: np.ndarray, bg: np.ndarray, fallback: float, max_fires: float = 1.0
) -> Calibration:
    """The threshold between own and background scores, and what it misses and fires on."""
    t = threshold(own, bg, fallback, max_fires)
    miss = float((own < t).mean()) if len(own) else 0.0
    fires = float((bg >= t).mean()) if len(bg) else 0.0
    return Calibration(round(t, 4), miss, fires, own.round(4).tolist(), bg.round(4).tolist())
