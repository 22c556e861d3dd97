"""Alpha-beta model of all-reduce: link-spec parsing, per-algorithm costs, busbw and the alpha/beta fit.

Every all-reduce algorithm's cost by hand (the flat ring, in plain numbers on eight nodes; the
hierarchical ring with eight ranks per node; the pipelined double binary tree; the sharded parameter server
tying with the ring), busbw as nccl-tests defines it, and the 1/T-weighted fit recovering alpha and beta
exactly and through noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commbench.units import NetworkSpecError, parse_bandwidth, parse_latency
from commbench.netmodel import (
    ALGORITHMS,
    Network,
    allreduce_time,
    busbw,
    efficiency,
    fit_alpha_beta,
    relative_error,
    step_comm_time,
)


def one_line(exc: pytest.ExceptionInfo) -> bool:
    return len(str(exc.value).splitlines()) == 1


# --- parsing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, bits_per_s", [
    ("100mbit", 1e8), ("1gbit", 1e9), ("10Gbit", 1e10), ("500kbit", 5e5), ("1tbit", 1e12),
    ("64bit", 64.0), ("10 gbit", 1e10), ("10gbit/s", 1e10), ("1kibit", 1024.0),
    ("125MB/s", 1e9), ("1.25GB/s", 1e10), ("10kB/s", 8e4),
    ("1KiB/s", 8 * 2**10), ("1MiB/s", 8 * 2**20), ("1GiB/s", 8 * 2**30),
    ("1e9", 1e9), (1e9, 1e9), (5, 5.0), (np.float64(2.5), 2.5),
])
def test_parse_bandwidth_good(text, bits_per_s):
    assert parse_bandwidth(text) == bits_per_s


@pytest.mark.parametrize("text", [
    "", "fast", "10gbps", "10Mbps", "1kbps", "100bps", "10Mb/s", "-1gbit", "0mbit", "0", -5, 0.0,
    "nan", "inf", float("nan"), float("inf"), "1e400gbit", "1e300tbit", "5 parsecs", "10 gigs",
    "1.2.3gbit", "gbit", "٣gbit", None, True, [1],
])
def test_parse_bandwidth_bad(text):
    with pytest.raises(NetworkSpecError) as exc:
        parse_bandwidth(text)
    assert one_line(exc) and str(exc.value).startswith("network.bandwidth: ")


def test_bps_is_refused_with_both_readings_spelled_out():
    with pytest.raises(NetworkSpecError, match=r"ambiguous .*; write 10gbit \(bits/s\) or 1\.25GB/s \(bytes/s\)$"):
        parse_bandwidth("10gbps")
    with pytest.raises(NetworkSpecError, match=r"write 100mbit \(bits/s\) or 12\.5MB/s \(bytes/s\)$"):
        parse_bandwidth("100Mbps")


def test_garbage_message_names_the_setting_and_an_example():
    with pytest.raises(NetworkSpecError) as exc:
        parse_bandwidth("10 gigs")
    assert str(exc.value) == "network.bandwidth: cannot read '10 gigs'; write e.g. 100mbit, 10gbit or 1.25GB/s"
    with pytest.raises(NetworkSpecError) as exc:
        parse_bandwidth("x" * 500 + "\n2")
    assert one_line(exc) and len(str(exc.value)) < 200


@pytest.mark.parametrize("text, seconds", [
    ("5us", 5e-6), ("5µs", 5e-6), ("5μs", 5e-6), ("0.5ms", 5e-4), ("1.5 ms", 1.5e-3), ("100ns", 1e-7),
    ("2s", 2.0), ("2 s", 2.0), ("0.002", 0.002), (0.002, 0.002), ("0", 0.0), (0, 0.0), ("0us", 0.0),
    ("-0", 0.0),
])
def test_parse_latency_good(text, seconds):
    assert parse_latency(text) == seconds


@pytest.mark.parametrize("text", [
    "", "fast", "-1ms", -1e-6, "nan", "inf", float("nan"), "1e400ms", "5 parsecs", "5 m", "ms", None,
])
def test_parse_latency_bad(text):
    with pytest.raises(NetworkSpecError) as exc:
        parse_latency(text)
    assert one_line(exc) and str(exc.value).startswith("network.latency: ")


@settings(max_examples=200, deadline=None)
@given(x=st.floats(min_value=0, max_value=1e290, exclude_min=True, allow_nan=False, allow_infinity=False),
       unit=st.sampled_from([("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9), ("KBIT", 1e3), ("Gbit", 1e9)]))
def test_decimal_bit_units_scale(x, unit):
    suffix, scale = unit
    assert parse_bandwidth(f"{x}{suffix}") == pytest.approx(x * scale, rel=1e-9)


# Near-misses reach the unit lookup; plain text() mostly fails at the number.
_SPEC_LIKE = st.one_of(st.text(), st.from_regex(r"\s?[+-]?[0-9.eE]{0,6}\s?[a-zA-Z/µiI]{0,6}\s?", fullmatch=True))


@settings(max_examples=300, deadline=None)
@given(text=_SPEC_LIKE)
def test_any_text_gives_a_rate_or_a_one_line_spec_error(text):
    try:
        bits = parse_bandwidth(text)
    except NetworkSpecError as exc:
        assert len(str(exc).splitlines()) == 1
    else:
        assert math.isfinite(bits) and bits > 0
    try:
        seconds = parse_latency(text)
    except NetworkSpecError as exc:
        assert len(str(exc).splitlines()) == 1
    else:
        assert math.isfinite(seconds) and seconds >= 0


def test_network_from_link():
    net = Network.from_link("10gbit", "5us")
    assert net == Network(alpha_s=5e-6, beta_s_per_byte=8 / 1e10)
    assert net.bandwidth_bits_per_s == 1e10
    assert Network.from_link("1.25GB/s", 0).beta_s_per_byte == 8 / 1e10
    with pytest.raises(NetworkSpecError):
        Network(alpha_s=-1e-6, beta_s_per_byte=1e-9)
    with pytest.raises(NetworkSpecError):
        Network(alpha_s=1e-6, beta_s_per_byte=math.inf)


# --- all-reduce costs ------------------------------------------------------------------------

A, B = 5e-6, 8 / 1e10          # 5 us, 10 Gbit/s
n = 4 * 61_100_840             # AlexNet's fp32 gradients
NET = Network(alpha_s=A, beta_s_per_byte=B)


@pytest.mark.parametrize("algorithm, nodes, expected", [
    ("ring", 2, 2*1*A + 2*1/2*n*B),
    ("ring", 4, 2*3*A + 2*3/4*n*B),
    ("ring", 8, 2*7*A + 2*7/8*n*B),
    ("ring", 6, 2*5*A + 2*5/6*n*B),
    ("halving_doubling", 2, 2*1*A + 2*1/2*n*B),
    ("halving_doubling", 4, 2*2*A + 2*3/4*n*B),
    ("halving_doubling", 8, 2*3*A + 2*7/8*n*B),
    # N=6: p=4 ranks halve and double, the 2 extra ones fold in first and get the result after
    ("halving_doubling", 6, 2*2*A + 2*3/4*n*B + 2*(A + n*B)),
    ("halving_doubling", 7, 2*2*A + 2*3/4*n*B + 2*(A + n*B)),
    ("binomial_tree", 2, 2*1*(A + n*B)),
    ("binomial_tree", 4, 2*2*(A + n*B)),
    ("binomial_tree", 8, 2*3*(A + n*B)),
    ("binomial_tree", 6, 2*3*(A + n*B)),
    ("ps", 2, 2*2*(A + n*B)),
    ("ps", 4, 2*4*(A + n*B)),
    ("ps", 6, 2*6*(A + n*B)),
    ("ps_sharded", 2, 2*1*(A + n/2*B)),
    ("ps_sharded", 4, 2*3*(A + n/4*B)),
    ("ps_sharded", 8, 2*7*(A + n/8*B)),
    ("ps_sharded", 6, 2*5*(A + n/6*B)),
    ("hierarchical_ring", 8, 2*7*A + 2*7/8*n*B),           # one rank per node: the ring
    ("double_binary_tree", 2, 2*1*(A + n*B)),              # depth 1: nothing to pipeline
])
def test_allreduce_time_by_hand(algorithm, nodes, expected):
    assert allreduce_time(algorithm, n, nodes, NET) == pytest.approx(expected, rel=1e-12)


def test_ring_on_eight_nodes_in_plain_numbers():
    # 14 x 5 us + 1.75 x 244,403,360 B x 0.8 ns/B
    assert allreduce_time("ring", n, 8, NET) == pytest.approx(7e-5 + 0.342164704, rel=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_node_sends_nothing(algorithm):
    assert allreduce_time(algorithm, n, 1, NET) == 0.0


def test_unknown_algorithm_names_the_known_ones():
    for call in (lambda: allreduce_time("butterfly", n, 4, NET), lambda: step_comm_time("butterfly", [], 4, NET)):
        with pytest.raises(ValueError, match="butterfly.*ring, hierarchical_ring, double_binary_tree, halving_doubling, binomial_tree, ps, ps_sharded") as exc:
            call()
        assert one_line(exc)


@pytest.mark.parametrize("nodes, n_bytes", [(0, 100), (2.5, 100), (4, -1), (4, math.nan)])
def test_allreduce_time_rejects_bad_arguments(nodes, n_bytes):
    with pytest.raises(ValueError):
        allreduce_time("ring", n_bytes, nodes, NET)


def test_step_comm_time_sums_buckets():
    buckets = [25 * 2**20, 25 * 2**20, n - 50 * 2**20]
    for algorithm in ALGORITHMS:
        assert step_comm_time(algorithm, buckets, 4, NET) == pytest.approx(
            sum(allreduce_time(algorithm, b, 4, NET) for b in buckets), rel=1e-12)
    assert step_comm_time("ring", [n], 8, NET) == allreduce_time("ring", n, 8, NET)
    # Same bytes in 4 buckets: 3 more all-reduces, each paying 2(N-1) alpha and no more bytes.
    four = step_comm_time("ring", [n // 4] * 4, 8, NET)
    assert four - step_comm_time("ring", [n], 8, NET) == pytest.approx(3 * 2*7*A, rel=1e-6)
    assert step_comm_time("ring", [], 8, NET) == 0.0


def test_efficiency_by_hand():
    assert efficiency(0.3, 0.1) == pytest.approx(0.75)
    assert efficiency(0.3, 0.0) == 1.0
    for compute, comm in ((0.0, 0.1), (0.3, -0.1), (math.nan, 0.1)):
        with pytest.raises(ValueError):
            efficiency(compute, comm)


def test_sharded_ps_pays_an_alpha_per_message_and_ties_with_the_ring():
    """It sends the ring's bytes in the ring's number of messages: it can no longer always win."""
    for nodes in (2, 3, 8, 64):
        assert allreduce_time("ps_sharded", n, nodes, NET) == pytest.approx(allreduce_time("ring", n, nodes, NET))


def test_double_binary_tree_pipelines_by_hand():
    # N=8: depth 3; k = sqrt(2 n B / A) chunks; 2 (L + k - 1)(A + n B / k)
    k = math.sqrt(2 * n * B / A)
    best = min(2 * (3 + j - 1) * (A + n * B / j) for j in (math.floor(k), math.ceil(k)))
    assert allreduce_time("double_binary_tree", n, 8, NET) == pytest.approx(best, rel=1e-12)
    # no latency: the bandwidth term alone, 2 n B at any N; small messages: log N alphas, not N
    assert allreduce_time("double_binary_tree", n, 64, Network(0.0, B)) == pytest.approx(2 * n * B)
    assert allreduce_time("double_binary_tree", 8, 1024, NET) < allreduce_time("ring", 8, 1024, NET) / 50


def test_hierarchical_ring_with_eight_ranks_per_node_by_hand():
    """64 ranks, 8 per node: intra reduce-scatter and all-gather over NVLink-like links, then 8 rings
    of n/8 across the 8 nodes sharing each node's one link."""
    from commbench.netmodel import Cluster

    ai, bi = 1e-6, 8 / 2.4e12
    c = Cluster(NET, Network(ai, bi), ranks_per_node=8)
    inner = 2 * 7 * (ai + n / 8 * bi)
    outer = 2 * 7 * A + 2 * 7 / 8 * n * B
    assert allreduce_time("hierarchical_ring", n, 64, c) == pytest.approx(inner + outer, rel=1e-12)
    # the flat ring waits for the inter-node link at each of its 2 x 63 steps
    assert allreduce_time("ring", n, 64, c) == pytest.approx(2 * 63 * A + 2 * 63 / 64 * n * B, rel=1e-12)
    assert allreduce_time("hierarchical_ring", 1024, 64, c) < allreduce_time("ring", 1024, 64, c)
    # all ranks on one node: only the intra link
    assert allreduce_time("ring", n, 8, c) == pytest.approx(2 * 7 * ai + 2 * 7 / 8 * n * bi, rel=1e-12)


# --- measured side ---------------------------------------------------------------------------

def test_busbw_as_nccl_tests_defines_it():
    algbw, bus = busbw(256 * 2**20, 0.5, 8)
    assert (algbw, bus) == (536870912.0, 939524096.0)
    assert busbw(1000, 1.0, 1) == (1000.0, 0.0)
    with pytest.raises(ValueError):
        busbw(1000, 0.0, 8)


SIZES = [2.0**k for k in range(10, 29)]     # 1 KiB .. 256 MiB


def ring_times(sizes, nodes, alpha=A, beta=B):
    return [2*(nodes - 1)*alpha + 2*(nodes - 1)/nodes*s*beta for s in sizes]


@pytest.mark.parametrize("nodes", [2, 4, 8])
def test_fit_recovers_alpha_beta_exactly(nodes):
    fit = fit_alpha_beta(SIZES, ring_times(SIZES, nodes), nodes)
    assert fit["alpha_s"] == pytest.approx(A, rel=1e-9)
    assert fit["beta_s_per_byte"] == pytest.approx(B, rel=1e-9)
    assert fit["bandwidth_bits_per_s"] == pytest.approx(1e10, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)
    assert fit["max_rel_error"] < 1e-9
    assert fit["points"] == len(SIZES)


@pytest.mark.parametrize("nodes", [2, 4, 8])
def test_fit_recovers_alpha_beta_through_noise(nodes):
    # 5 timed repeats per size (as nccl-tests iterations), each off by a seeded 3% (1 sigma).
    rng = np.random.default_rng(1234 + nodes)
    sizes = [s for s in SIZES for _ in range(5)]
    times = np.array(ring_times(sizes, nodes)) * (1 + 0.03 * rng.standard_normal(len(sizes)))
    fit = fit_alpha_beta(sizes, times, nodes)
    assert fit["alpha_s"] == pytest.approx(A, rel=0.02)
    assert fit["beta_s_per_byte"] == pytest.approx(B, rel=0.02)
    assert fit["r2"] > 0.99
    assert 0.03 < fit["max_rel_error"] < 0.15


def test_fit_without_weights_would_lose_alpha():
    # Guard of the 1/t weighting: noise on the 256 MiB point alone must not swamp alpha.
    times = ring_times(SIZES, 8)
    times[-1] *= 1.01
    assert fit_alpha_beta(SIZES, times, 8)["alpha_s"] == pytest.approx(A, rel=0.05)


def test_fit_clamps_at_zero():
    sizes = [1e3, 1e4, 1e5]
    # A negative intercept would mean a negative latency: alpha -> 0, beta refit alone.
    fit = fit_alpha_beta(sizes, [1e-9 * s - 1e-7 for s in sizes], 2)
    assert fit["alpha_s"] == 0.0 and fit["beta_s_per_byte"] > 0
    # Times falling with size would mean a negative beta: beta -> 0, alpha refit alone.
    fit = fit_alpha_beta([1, 1000], [2e-5, 1e-5], 2)
    assert fit["beta_s_per_byte"] == 0.0 and fit["alpha_s"] > 0
    assert fit["bandwidth_bits_per_s"] == math.inf


@pytest.mark.parametrize("sizes, times, nodes", [
    (SIZES, ring_times(SIZES, 2), 1),
    ([2**20], [1e-3], 4),
    ([2**20, 2**20], [1e-3, 1.1e-3], 4),
    ([2**10, 2**20], [1e-3], 4),
    ([2**10, 2**20], [1e-3, 0.0], 4),
])
def test_fit_rejects_what_it_cannot_fit(sizes, times, nodes):
    with pytest.raises(ValueError) as exc:
        fit_alpha_beta(sizes, times, nodes)
    assert one_line(exc)


def test_relative_error():
    assert relative_error(1.1, 1.0) == pytest.approx(0.1)
    assert relative_error(0.5, 1.0) == -0.5
    with pytest.raises(ValueError):
        relative_error(1.0, 0.0)
