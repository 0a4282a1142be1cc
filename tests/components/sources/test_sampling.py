"""Caps: deterministic, within bounds, and spread over the whole source."""

import numpy as np
import pytest

from components.sources.sampling import priority, select

pytestmark = pytest.mark.unit


def test_priority_depends_on_seed_and_id_only():
    assert priority(0, "a/b/1") == priority(0, "a/b/1")
    assert priority(0, "a/b/1") != priority(1, "a/b/1")
    assert 0 <= priority(3, "x") < 2**63


def test_no_caps_keeps_everything():
    assert select([5, 3, 9], [1, 1, 1], None, None).tolist() == [0, 1, 2]


def test_doc_cap_keeps_lowest_priorities_in_stream_order():
    assert select([50, 10, 40, 20, 30], [1] * 5, 3, None).tolist() == [1, 3, 4]


def test_char_cap_skips_a_document_that_does_not_fit_and_takes_smaller_ones():
    # priority order: 1 (size 6), 3 (size 8, too big for the 4 left), 4 (size 3), 0, 2
    kept = select([40, 10, 50, 20, 30], [5, 6, 5, 8, 3], None, 10).tolist()
    assert kept == [1, 4]


def test_char_cap_respected_and_spread_over_positions():
    rng = np.random.default_rng(0)
    sizes = rng.integers(50, 500, size=5000).tolist()
    ids = [f"src/file{i // 100:03d}.txt/{i % 100}" for i in range(5000)]
    kept = select([priority(7, i) for i in ids], sizes, None, 20_000)
    assert sum(sizes[i] for i in kept) <= 20_000
    assert len(kept) > 40
    files = {ids[i].split("/")[1] for i in kept}
    assert len(files) > 25  # 50 files of 100 docs: a prefix would hit only one or two
    assert kept.max() > 4000 and kept.min() < 1000
    assert np.array_equal(kept, select([priority(7, i) for i in ids], sizes, None, 20_000))


def test_both_caps_apply():
    kept = select(list(range(100)), [10] * 100, 5, 1000)
    assert kept.tolist() == [0, 1, 2, 3, 4]
    kept = select(list(range(100)), [10] * 100, 50, 100)
    assert len(kept) == 10
