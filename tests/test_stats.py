"""Aggregation of per-rank step figures: the per-step split over ranks, median/p90 over steps, ring bytes."""

from __future__ import annotations

import numpy as np
import pytest

from commbench.stats import layer_bytes, percentile, ring_sent_bytes, summarize


def test_percentile_matches_numpy():
    values = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4]
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.parametrize("nodes, sent", [(1, 0), (2, 1000), (4, 1500), (8, 1750)])
def test_ring_sends_two_n_minus_one_over_n(nodes, sent):
    assert ring_sent_bytes(1000, nodes) == sent


def step(t, wait, payload=400, buf=0, compute=None):
    """A rank's step split (split.rank_split's fields): forward 0, the rest compute, `wait` exposed."""
    compute = t - wait if compute is None else compute
    return {"step": t, "forward": 0.0, "backward": compute, "compute": compute, "codec": 0.0, "buffer": 0.0,
            "optimizer": 0.0, "wait": wait, "busy": wait, "payload": payload, "collectives": 1, "buffer_bytes": buf}


def test_summary_takes_the_slowest_rank_per_step():
    ranks = [
        {"steps": [step(1.0, 0.5), step(2.0, 0.1), step(3.0, 0.2)]},
        {"steps": [step(1.5, 0.1), step(1.0, 0.9), step(3.5, 0.3, buf=64)]},
    ]
    s = summarize(ranks, nodes=2, batch_size=4)
    # per step: the step is the slowest rank's [1.5, 2.0, 3.5]; compute the larger [1.4, 1.9, 3.2];
    # exposed = step - compute [0.1, 0.1, 0.3]; imbalance = compute difference [0.9, 1.8, 0.4]
    assert s["step_time_s"] == 2.0 and s["step_time_p90_s"] == pytest.approx(3.2)
    assert s["compute_time_s"] == pytest.approx(1.9)
    assert s["exposed_comm_s"] == pytest.approx(0.1) and "comm_time_s" not in s  # one name (schema 2)
    assert s["imbalance_s"] == pytest.approx(0.9)
    assert s["throughput"] == 2 * 4 / 2.0
    assert (s["grad_bytes_per_step"], s["sent_bytes_per_step"], s["buffer_bytes_per_step"]) == (400, 400, 64)


def test_ranks_disagreeing_on_payload_is_an_error():
    ranks = [{"steps": [step(1.0, 0.1, payload=400)]}, {"steps": [step(1.0, 0.1, payload=404)]}]
    with pytest.raises(ValueError, match=r"different payload bytes to their collectives: \[400, 404\]"):
        summarize(ranks, nodes=2, batch_size=1)


def test_all_gathered_bytes_are_sent_n_minus_1_times():
    """top-k and int8 all-gather: in a ring each rank forwards every other rank's part, (N-1) x its own;
    the all-reduced rest goes 2(N-1)/N x."""
    steps = [{**step(1.0, 0.1, payload=1000), "gather_payload": 200}]
    s = summarize([{"steps": steps}] * 4, nodes=4, batch_size=1)
    assert s["sent_bytes_per_step"] == round(2 * 3 * 800 / 4) + 3 * 200


def test_layer_bytes_sums_buckets_largest_first():
    buckets = [{"layers": {"fc": 40, "conv1": 4}}, {"layers": {"conv2": 8, "fc": 4}}]
    assert list(layer_bytes(buckets).items()) == [("fc", 44), ("conv2", 8), ("conv1", 4)]
