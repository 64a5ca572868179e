"""The bootstrap intervals claims rest on: coverage, pairing and bad input."""

import numpy as np
import pytest

from embedlab.stats import Interval, bootstrap_ci, paired_bootstrap, seed_spread


def test_interval_contains_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)
    small = bootstrap_ci(rng.normal(0.5, 1.0, 50), seed=0)
    large = bootstrap_ci(rng.normal(0.5, 1.0, 5000), seed=0)
    assert small.lo < small.estimate < small.hi
    assert (large.hi - large.lo) < (small.hi - small.lo) / 5
    assert large.lo < 0.5 < large.hi


def test_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(2)
    hits = sum(bootstrap_ci(rng.normal(0.0, 1.0, 200), n_boot=500, seed=s).lo < 0.0
               < bootstrap_ci(rng.normal(0.0, 1.0, 200), n_boot=500, seed=s).hi
               for s in range(10))
    assert hits >= 6  # about 9.5 of 10 expected; a broken interval gives far fewer


def test_pairing_removes_item_difficulty() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.uniform(0, 1, 400)
    a = difficulty + 0.02 + rng.normal(0, 0.01, 400)
    b = difficulty + rng.normal(0, 0.01, 400)
    paired = paired_bootstrap(a, b, seed=0)
    unpaired_width = (bootstrap_ci(a).hi - bootstrap_ci(a).lo)
    assert paired.above_zero and not paired.below_zero and paired.excludes_zero
    assert paired.hi - paired.lo < unpaired_width / 5
    assert paired_bootstrap(b, a, seed=0).below_zero


def test_same_seed_same_interval_and_formatting() -> None:
    x = np.arange(20.0)
    assert bootstrap_ci(x, seed=4) == bootstrap_ci(x, seed=4)
    iv = Interval(0.043, 0.028, 0.059)
    assert iv.fmt(signed=True) == "+0.043 [+0.028, +0.059]"
    assert iv.fmt() == "0.043 [0.028, 0.059]"
    assert seed_spread([0.1, 0.3, 0.2]).as_dict()["lo"] == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, float("nan")]])
def test_bad_input(bad) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(bad)


def test_paired_needs_same_items_and_sane_settings() -> None:
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0, 2.0], n_boot=10)
    with pytest.raises(ValueError, match="two runs"):
        seed_spread([1.0])
