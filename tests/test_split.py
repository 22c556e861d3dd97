"""The step split: hand-computed timelines for the arithmetic, then real gloo runs (2-3 ranks) where
every timed step adds up, a rank slowed on purpose shows as imbalance, and top-k's selection lands
in codec.

In the real runs every timed step of a 3-rank MobileNet v2 run adds up to float precision with
0 <= overlap <= busy, and a rank whose forward is slowed by 80 ms (a model pre-hook that sleeps) shows as
imbalance, not communication."""

from __future__ import annotations

import time

import pytest

from commbench.split import minus, rank_split, step_split, union
from commbench.stats import percentile
from tests.ddp_harness import spawn


def test_intervals():
    assert union([(3, 4), (0, 1), (0.5, 2)]) == [(0, 2), (3, 4)]
    assert minus((0, 10), [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]


def test_a_hand_computed_rank_step():
    # forward 0-10 ms (a 2 ms buffer broadcast in it), backward from 10: bucket A ready at 30, encoded
    # until 31, its all-reduce 31-50; bucket B ready at 60, encoded until 62, all-reduce 62-80, decoded
    # 80-84; backward returns at 85; optimizer until 95.
    ms = 1e-3
    split = rank_split(10 * ms, 85 * ms, 95 * ms, buffers=[(4 * ms, 6 * ms)],
                       buckets=[(30 * ms, 31 * ms, 50 * ms), (60 * ms, 62 * ms, 84 * ms)],
                       spans=[(31 * ms, 50 * ms), (62 * ms, 80 * ms)])
    expect = {"forward": 8, "buffer": 2, "backward": 49, "compute": 57, "codec": 7, "optimizer": 10,
              "wait": 21, "busy": 39, "step": 95}
    assert {k: round(split[k] / ms, 6) for k in expect} == expect
    assert split["ready_offsets"] == pytest.approx([20 * ms, 50 * ms])
    # codec: 1 + 2 ms encoding, 4 ms decoding after the last issue; wait = buffer 2 + 62..80 + 84..85 = 21
    assert sum(split[k] for k in ("compute", "codec", "wait", "optimizer")) == pytest.approx(split["step"])


def test_across_ranks_the_slow_ranks_compute_is_imbalance():
    fast = {"step": 1.0, "compute": 0.5, "forward": 0.1, "backward": 0.4, "codec": 0.0, "buffer": 0.0,
            "optimizer": 0.1, "busy": 0.45}
    slow = {**fast, "compute": 0.8, "backward": 0.7, "busy": 0.1}
    s = step_split([fast, slow])
    assert s["compute_time_s"] == 0.8 and s["imbalance_s"] == pytest.approx(0.3)
    assert s["exposed_comm_s"] == pytest.approx(1.0 - 0.8 - 0.0 - 0.1)
    assert s["comm_busy_s"] == 0.1 and s["overlap_s"] == pytest.approx(0.0, abs=1e-12)  # busy 0.1, all exposed


def slowed_train_loop(cfg):
    """commbench's train loop with rank 1's forward 80 ms slower (a model pre-hook that sleeps)."""
    import torch.distributed as dist

    from commbench import worker

    build = worker.build_model

    def slowed(*args, **kwargs):
        model = build(*args, **kwargs)
        if dist.get_rank() == 1:
            model.register_forward_pre_hook(lambda *_: time.sleep(0.08))
        return model

    worker.build_model = slowed
    return worker.train_loop(cfg)


def split_of(overrides, tmp_path, world, fn=None):
    from commbench.plan import make_plan
    from commbench.config import compose
    from commbench.record import build_record

    plan = make_plan(compose([*overrides, f"nodes={world}", f"results_dir={tmp_path}"]))
    if fn is None:
        from commbench.worker import train_loop as fn
    gathered = spawn(fn, world, plan.worker_config())
    return build_record(plan, gathered, {"ray_init_s": 0.0, "fit_s": 0.0, "run_s": 0.0})


def test_every_timed_step_adds_up_on_three_ranks(tmp_path):
    record = split_of(["model=mobilenet_v2", "steps=6", "warmup=1"], tmp_path, 3)
    per = record["per_step"]
    assert len(per["step_time_s"]) == 6
    for i, step in enumerate(per["step_time_s"]):
        parts = per["compute_time_s"][i] + per["codec_time_s"][i] + per["exposed_comm_s"][i] + per["optimizer_time_s"][i]
        assert parts == pytest.approx(step, rel=1e-12, abs=1e-12)
        assert per["compute_time_s"][i] == pytest.approx(per["forward_time_s"][i] + per["backward_time_s"][i])
        assert 0 <= per["overlap_s"][i] <= per["comm_busy_s"][i]
        assert per["exposed_comm_s"][i] >= 0 and per["imbalance_s"][i] >= 0
    assert record["buffer_bytes_per_step"] > 0  # mobilenet_v2's BatchNorm buffers: a broadcast in forward
    assert max(per["buffer_time_s"]) > 0
    trace = record["trace"]
    assert [b["payload_bytes"] for b in trace["buckets"]] and len(trace["ranks"]) == 3
    offsets = trace["ranks"][0]["ready_offsets_s"]
    assert len(offsets) == len(trace["buckets"]) and offsets == sorted(offsets)
    # the median step as every rank lived it: its clock points, its time the median of the steps'
    timeline = record["step_timeline"]
    assert timeline["step_s"] == sorted(per["step_time_s"])[2]  # of 6: the lower of the two middle ones
    assert timeline["step_s"] == per["step_time_s"][timeline["step"]] and len(timeline["ranks"]) == 3
    for r in timeline["ranks"]:
        assert 0 < r["backward_start"] < r["backward_end"] <= r["end"] <= timeline["step_s"] + 1e-12
        assert len(r["buckets"]) == len(trace["buckets"]) and len(r["collectives"]) >= len(trace["buckets"])


def test_a_slowed_rank_is_imbalance_not_communication(tmp_path):
    record = split_of(["model=squeezenet", "steps=8", "warmup=1"], tmp_path, 2, slowed_train_loop)
    imbalance, exposed = record["imbalance_s"], record["exposed_comm_s"]
    assert imbalance >= 0.06, record["per_step"]
    assert exposed < 0.5 * imbalance, (exposed, imbalance)


def test_topk_selection_lands_in_codec(tmp_path):
    plain = split_of(["model=squeezenet", "steps=6", "warmup=2"], tmp_path / "none", 2)
    topk = split_of(["model=squeezenet", "steps=6", "warmup=2", "compression=topk"], tmp_path / "topk", 2)
    assert topk["codec_time_s"] > 5 * plain["codec_time_s"] and topk["codec_time_s"] > 1e-3
    per = topk["per_step"]
    for i, step in enumerate(per["step_time_s"]):
        assert per["compute_time_s"][i] + per["codec_time_s"][i] + per["exposed_comm_s"][i] + \
            per["optimizer_time_s"][i] == pytest.approx(step)
    assert percentile(per["codec_time_s"], 50) == topk["codec_time_s"]


def test_the_median_step_is_the_slowest_ranks_median():
    from commbench.split import median_step

    def rank(r, times):
        return {"rank": r, "steps": [{"step": t, "events": {"end": t, "who": r}} for t in times]}

    # steps by their slowest rank: 0.3, 0.5, 0.2 -> the median is step 0 (0.3 s)
    got = median_step([rank(0, [0.3, 0.1, 0.2]), rank(1, [0.1, 0.5, 0.1])])
    assert got == {"step": 0, "step_s": 0.3, "ranks": [{"rank": 0, "end": 0.3, "who": 0}, {"rank": 1, "end": 0.1, "who": 1}]}
