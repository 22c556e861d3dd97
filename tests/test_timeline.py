"""The step timeline: simulated (timeline.py) against hand-computed timelines, and replayed
(comm/replay.py: compute as sleep, collectives at their ready offsets) against the same timelines,
with a stand-in collective of known duration and on real gloo ranks.

By hand: one bucket hidden behind backward and one exposed; two channels sharing a link's bandwidth but
not its latency; a non-power-of-two N; eight ranks per node. Also a trace read from a record and scaled,
gloo's channels equal to torch's default worker threads, the replay on 3 real gloo ranks sending exactly
the payload, and validation's pairing of prediction, replay and run on one setup, by hand."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from commbench.comm.replay import trace_step
from commbench.netmodel import Cluster, Network, allreduce_time
from commbench.timeline import CHANNELS, Trace, collective_ends, predict, simulate

# Two buckets: the first ready 100 ms into a 300 ms backward and 50 ms long (hidden behind backward),
# the second ready at 200 ms and 300 ms long: it ends at 500 ms, 200 ms after backward.
TWO = Trace(forward_s=0.1, backward_s=0.3, codec_s=0.0, optimizer_s=0.05, buckets=(1, 2), ready_s=(0.1, 0.2))
COST = {0: 0.0, 1: 0.05, 2: 0.3}


def test_two_buckets_one_hidden_one_exposed_by_hand():
    out = simulate(TWO, COST.__getitem__)
    assert out["exposed_comm_s"] == pytest.approx(0.2)
    assert out["step_s"] == pytest.approx(0.1 + 0.3 + 0.2 + 0.05)
    assert out["no_overlap_step_s"] == pytest.approx(0.1 + 0.3 + 0.35 + 0.05)
    assert out["comm_busy_s"] == pytest.approx(0.5 - 0.1)
    # the second ready at 0.12 instead: one channel, busy with the first until 0.15, so the second
    # runs 0.15 .. 0.45: 0.15 exposed
    late = Trace(0.1, 0.3, 0.0, 0.05, (1, 2), (0.1, 0.12))
    assert simulate(late, COST.__getitem__)["exposed_comm_s"] == pytest.approx(0.15)


def test_channels_share_the_link_but_not_the_latency():
    # two collectives ready at once, 0.5 s latency and 1 s of link each
    assert collective_ends([0, 0], [0.5, 0.5], [1, 1], channels=1) == pytest.approx([1.5, 3.0])
    assert collective_ends([0, 0], [0.5, 0.5], [1, 1], channels=2) == pytest.approx([2.5, 2.5])
    # the link is work-conserving: with no latency the last ends at the same time either way
    assert max(collective_ends([0, 0.2], [0, 0], [1, 1], channels=2)) == pytest.approx(2.0)
    # a late second one: the first has 0.5 of work left at 0.5, then both share: 0.5 s more each
    assert collective_ends([0, 0.5], [0, 0], [1, 0.5], channels=2) == pytest.approx([1.5, 1.5])
    with pytest.raises(ValueError):
        collective_ends([0], [0], [1], channels=0)


def test_non_power_of_two_through_the_timeline():
    """N=6 halving-doubling pays the fold; predict's step is the simulated one."""
    net = Network(1e-4, 1e-8)
    trace = Trace.all_at_end([1_000_000], 0.1)
    hd = predict(trace, 6, Cluster(net))["halving_doubling"]
    by_hand = 2 * 2 * 1e-4 + 2 * 3 / 4 * 1e6 * 1e-8 + 2 * (1e-4 + 1e6 * 1e-8)
    assert hd["exposed_comm_s"] == pytest.approx(by_hand)
    assert hd["step_s"] == pytest.approx(0.1 + by_hand) == pytest.approx(hd["no_overlap_step_s"])
    assert hd["efficiency"] == pytest.approx(0.1 / (0.1 + by_hand))


def test_hierarchy_with_eight_gpus_per_node_through_the_timeline():
    inter, intra = Network(5e-6, 8 / 100e9), Network(1e-6, 8 / 2400e9)
    cluster = Cluster(inter, intra, ranks_per_node=8)
    trace = Trace(0.01, 0.03, 0.0, 0.005, (100_000_000,), (0.03,))
    out = predict(trace, 64, cluster, CHANNELS["nccl"])
    hier = 2 * 7 * (1e-6 + 1e8 / 8 * 8 / 2400e9) + 2 * 7 * 5e-6 + 2 * 7 / 8 * 1e8 * 8 / 100e9
    assert out["hierarchical_ring"]["exposed_comm_s"] == pytest.approx(hier)
    assert out["ring"]["exposed_comm_s"] == pytest.approx(allreduce_time("ring", 1e8, 64, cluster))
    assert out["hierarchical_ring"]["step_s"] < out["ring"]["step_s"]


def test_a_trace_from_a_record_scales():
    record = {"trace": {"buckets": [{"index": 1, "payload_bytes": 40, "dtype": "float32", "collective": "all_reduce"},
                                    {"index": 0, "payload_bytes": 60, "dtype": "float32", "collective": "all_reduce"}],
                        "ranks": [{"rank": 0, "forward_s": 0.1, "backward_s": 0.2, "codec_s": 0.01,
                                   "optimizer_s": 0.04, "ready_offsets_s": [0.05, 0.19]}]}}
    trace = Trace.of_record(record)
    assert trace.buckets == (40, 60) and trace.ready_s == (0.05, 0.19)  # hook order, as recorded
    assert trace.compute_s == pytest.approx(0.35)
    fast = trace.scaled(0.1)
    assert fast.compute_s == pytest.approx(0.035) and fast.ready_s == pytest.approx((0.005, 0.019))
    assert trace.to_step(0.7).backward_s == pytest.approx(0.4)
    with pytest.raises(ValueError):
        trace.scaled(0.0)
    with pytest.raises(ValueError):  # the simulator would never admit it
        Trace(0.1, 0.2, 0.0, 0.0, (1,), (float("nan"),))


class TimedCounter:
    """A stand-in for the hooks' ByteCounter whose collectives take known times (one thread each)."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.step = type("Step", (), {"spans": []})()

    def all_reduce(self, tensor):
        fut = torch.futures.Future()
        span = [time.perf_counter(), None]
        self.step.spans.append(span)

        def finish():
            span[1] = time.perf_counter()
            fut.set_result([tensor])

        threading.Timer(self.durations.pop(0), finish).start()
        return fut


def test_replayed_step_follows_the_hand_computed_timeline():
    """The replay sleeps compute and issues at the offsets: the wait it measures is the timeline's."""
    trace = {"forward_s": 0.1, "backward_s": 0.3, "codec_s": 0.0, "optimizer_s": 0.05, "ready_s": [0.1, 0.2]}
    out = trace_step(TimedCounter([0.05, 0.3]), [torch.ones(1), torch.ones(1)], trace)
    assert out["wait"] == pytest.approx(0.2, abs=0.03)
    assert out["step"] == pytest.approx(0.65, abs=0.04)
    assert out["compute"] == pytest.approx(0.45, abs=0.03)
    assert out["busy"] == pytest.approx(0.05 + 0.3, abs=0.04)  # two disjoint spans


def _replay(cfg):
    from commbench.comm.replay import replay_loop

    return replay_loop(cfg)


def test_trace_replay_on_real_gloo_ranks_sends_the_payload(tmp_path):
    from tests.ddp_harness import spawn, worker_config

    cfg = worker_config(["nodes=3"], str(tmp_path))
    trace = {"forward_s": 0.02, "backward_s": 0.05, "codec_s": 0.0, "optimizer_s": 0.01, "ready_s": [0.01, 0.05]}
    cfg.update(iters=3, warmup_iters=1, replays=[
        {"buckets": [{"numel": 1000, "dtype": "float32"}, {"numel": 500, "dtype": "float16"}], "traces": [trace]},
        {"buckets": [{"numel": 1000, "dtype": "float32"}], "traces": None}])
    out = spawn(_replay, 3, cfg)
    traced, back = out["replays"]
    assert traced["payloads"] == [4000 + 1000] and back["payloads"] == [4000]
    assert len(traced["iters"]) == 3
    for it in traced["iters"]:
        assert it["step_s"] >= 0.08 and 0 <= it["exposed_comm_s"] < it["step_s"]
    assert all(it["step_s"] == it["exposed_comm_s"] for it in back["iters"])


def test_gloo_channels_are_torchs_default_worker_threads():
    """The simulated gloo runs as many collectives at once as ProcessGroupGloo has worker threads."""
    import torch.distributed as dist

    assert CHANNELS["gloo"] == dist.ProcessGroupGloo._Options()._threads and CHANNELS["nccl"] == 1


def _trace_record(nodes: int, config_hash: str, **extra) -> dict:
    return {"kind": "run", "model": "squeezenet", "model_kwargs": {"num_classes": 1000}, "nodes": nodes,
            "status": "ok", "config_hash": config_hash, "batch_size": 8, "image_size": 64, "threads_per_worker": 1,
            "trace": {"buckets": [{"index": 0, "payload_bytes": 1_000_000, "dtype": "float32", "collective": "all_reduce"}],
                      "ranks": [{"rank": 0, "forward_s": 0.02, "backward_s": 0.05, "codec_s": 0.0, "optimizer_s": 0.01,
                                 "ready_offsets_s": [0.05]}]}, **extra}


def test_validation_pairs_prediction_replay_and_run_on_one_setup():
    """predicted (link rate less framing: no busbw fit) vs trace replay vs the trained run, by hand."""
    from commbench.framing import link_overhead
    from commbench.results.validation import timeline_rows

    link = {"cluster_kind": "emulated", "bandwidth_bits_per_s": 100e6}
    trace = _trace_record(1, "t1")
    run = _trace_record(2, "r2", step_time_s=0.2, exposed_comm_s=0.11, **link)
    replay = {"kind": "replay", "mode": "trace", "model": "squeezenet", "nodes": 2, "trace_config_hash": "t1",
              "trace_nodes": 1, "compute_scale": 1.0, "compute_step_s": None, "payload_bytes": 1_000_000,
              "step_time_s": 0.18, "exposed_comm_s": 0.1, **link}
    loopback = {**replay, "cluster_kind": "local", "bandwidth_bits_per_s": None}
    [row] = timeline_rows([trace, run], [replay, loopback], [])
    comm = 2 * 1 / 2 * 1_000_000 * 8 * link_overhead(1500) / 100e6  # the ring at N=2, no alpha
    assert row["predicted_step_s"] == pytest.approx(0.08 + comm)
    assert row["predict_vs_replay"] == pytest.approx((0.08 + comm - 0.18) / 0.18)
    assert row["replay_vs_run"] == pytest.approx((0.18 - 0.2) / 0.2)
    assert row["trace"] == "nodes=1" and row["network"] == "link rate less framing"
    # a busbw fit over the same network at that N takes the link's place
    fit = {"kind": "busbw", "nodes": 2, "fit": {"alpha_s": 1e-3, "beta_s_per_byte": 1e-7}, **link}
    [row] = timeline_rows([trace, run], [replay], [fit])
    assert row["predicted_step_s"] == pytest.approx(0.08 + 2 * 1e-3 + 1_000_000 * 1e-7)
    assert row["network"] == "busbw fit N=2"
    # a replay of the run's own trace pairs with that run; a scaled compute never pairs with a run
    own = {**replay, "trace_config_hash": "r2", "trace_nodes": 2}
    scaled = {**replay, "compute_scale": 0.1}
    rows = timeline_rows([trace, run], [replay, own, scaled], [fit])
    assert sorted((r["trace"], r["run_step_s"] or 0) for r in rows) == [("N=2 run's own", 0.2), ("nodes=1", 0), ("nodes=1", 0.2)]
