"""The per-scene benchmark's history study keeps the test part and its events, and shortens only
the training part (to its last S seconds)."""
from __future__ import annotations

import numpy as np

from streamad.benchmarks import scenes as S


def test_history_limit_trains_on_the_last_seconds_before_the_same_cut():
    sig = np.arange(S.SR * 40, dtype=np.float32)
    full, short = S.Scene("s", "dev", sig), S.Scene("s", "dev", sig)
    S.plan_events(full, n_events=5, min_events=8, seed=0)
    S.plan_events(short, n_events=5, min_events=8, seed=0, history_s=5.0)
    assert full.cut == short.cut == int(len(sig) * S.TRAIN_FRAC)
    assert np.array_equal(full.test, short.test) and full.plan == short.plan and full.mix_seed == short.mix_seed
    assert len(full.train) == full.cut and len(short.train) == 5 * S.SR
    assert short.train[-1] == full.train[-1] == sig[full.cut - 1]
    longer = S.Scene("s", "dev", sig)
    S.plan_events(longer, n_events=5, min_events=8, seed=0, history_s=1000.0)  # more than there is: all of it
    assert np.array_equal(longer.train, full.train)
