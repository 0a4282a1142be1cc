"""Remixing reaches the target token shares within tolerance and respects the upsampling cap."""

import random

import numpy as np
import pytest

from components.data import remix

pytestmark = pytest.mark.unit


def _corpus(seed: int = 0) -> dict[str, list[tuple[str, int]]]:
    rng = random.Random(seed)
    sizes = {"en": 3000, "zh": 1500, "code": 300}
    return {b: [(f"{b}-{i}", rng.randrange(50, 500)) for i in range(n)] for b, n in sizes.items()}


def test_target_weights_are_reached_within_tolerance():
    docs = _corpus()
    weights = {"en": 0.4, "zh": 0.35, "code": 0.25}
    before = {b: sum(t for _, t in d) for b, d in docs.items()}
    rates = remix.rates(before, weights, max_upsample=4.0)
    after = {b: int((remix.copies([i for i, _ in d], rates[b], 0) * np.array([t for _, t in d])).sum())
             for b, d in docs.items()}
    total = sum(after.values())
    for b, w in weights.items():
        assert abs(after[b] / total - w) < 0.02, (b, after[b] / total)
    assert max(rates.values()) <= 4.0 + 1e-9


def test_upsampling_cap_limits_the_total_instead_of_exceeding_it():
    rates = remix.rates({"en": 1000, "code": 10}, {"en": 0.5, "code": 0.5}, max_upsample=2.0)
    assert rates["code"] == pytest.approx(2.0)
    assert rates["en"] == pytest.approx(0.02)


def test_bucket_without_weight_is_dropped_and_no_weight_at_all_is_an_error():
    assert remix.rates({"en": 100, "zh": 100}, {"en": 1.0}, 4.0)["zh"] == 0.0
    with pytest.raises(ValueError, match="no weight"):
        remix.rates({"zh": 100}, {"en": 1.0}, 4.0)


def test_copies_are_deterministic():
    ids = [f"d{i}" for i in range(1000)]
    a, b = remix.copies(ids, 1.5, seed=3), remix.copies(ids, 1.5, seed=3)
    assert (a == b).all() and set(a.tolist()) == {1, 2}
    assert abs(a.mean() - 1.5) < 0.06
    assert (remix.copies(ids, 1.5, seed=4) != a).any()


def test_mixture_keys_must_be_buckets():
    from components.config import DataConfig

    with pytest.raises(ValueError, match="en, zh or code"):
        DataConfig(mixture={"en": 1.0, "web": 1.0})
