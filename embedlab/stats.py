"""Intervals for the course's claims: how sure a measured number, or a difference, is.

A difference of a few hundredths in nDCG@10 over a few hundred queries can be noise. Claims that
compare two systems on the same queries use a **paired bootstrap** (Efron and Tibshirani 1993,
ch. 16; Sakai 2006 for IR evaluation): resample the queries with replacement, recompute the mean
of each system's per-query scores on the resample, and read the 2.5th and 97.5th percentiles of
the difference. Pairing keeps each query's difficulty on both sides, so the interval measures the
systems, not the query sample. A claim "A beats B" is then stated as "the 95% interval of A - B
lies above 0".

Everything is seeded: the same inputs and seed give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_ci", "paired_bootstrap", "seed_spread"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval ``[lo, hi]`` at ``level``."""

    estimate: float
    lo: float
    hi: float
    level: float = 0.95
    n: int = 0

    @property
    def above_zero(self) -> bool:
        """True when the whole interval lies above 0 (a difference that is not noise)."""
        return self.lo > 0.0

    @property
    def below_zero(self) -> bool:
        return self.hi < 0.0

    @property
    def excludes_zero(self) -> bool:
        return self.above_zero or self.below_zero

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"

    def fmt(self, digits: int = 3, signed: bool = False) -> str:
        """``0.637 [0.604, 0.670]`` (``signed=True`` writes ``+0.043 [+0.028, +0.059]``)."""
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(self.estimate)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "level": self.level,
                "n": self.n}


def _as_scores(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d sequence of per-item scores, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: every score must be finite")
    return arr


def _check(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot}")


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> Interval:
    """The mean of per-item ``values`` with a percentile-bootstrap interval over items."""
    x = _as_scores(values, "values")
    _check(level, n_boot)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(int(n_boot), x.size))
    means = x[idx].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return Interval(float(x.mean()), float(lo), float(hi), level, int(x.size))


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``a - b`` over paired items (the same queries scored by two systems), with a
    percentile-bootstrap interval: items are resampled together on both sides."""
    x, y = _as_scores(a, "a"), _as_scores(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must score the same items: shapes {x.shape} and {y.shape}")
    return bootstrap_ci(x - y, n_boot=n_boot, level=level, seed=seed)


def seed_spread(values: Sequence[float] | np.ndarray) -> Interval:
    """Runs of one experiment under different seeds: their mean, with ``[min, max]`` as the
    interval (``level`` 1.0: every run lies inside)."""
    x = _as_scores(values, "values")
    if x.size < 2:
        raise ValueError("seed_spread needs at least two runs")
    return Interval(float(x.mean()), float(x.min()), float(x.max()), 1.0, int(x.size))
