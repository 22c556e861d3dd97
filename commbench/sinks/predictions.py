"""Console tables of the step timeline: trace replays, predictions and their validation."""

from __future__ import annotations

from typing import Any

import textwrap

from rich.console import Group
from rich.table import Table

from commbench.results.setup import describe
from commbench.sinks.console import ANSWER_COLUMNS, _opt_ms, _pct, _table, fmt_bytes, fmt_ms
from commbench.sinks.link import fmt_rate


def replay_table(records: list[dict[str, Any]]) -> Table:
    """One row per replayed model: trace replays (compute as sleep) or back-to-back buckets."""
    first = records[0]
    trace = first["mode"] == "trace"
    title = (f"trace replay on {first['nodes']} ranks: compute as sleep, buckets at their ready offsets"
             if trace else f"comm-only replay on {first['nodes']} ranks: buckets back to back, no compute")
    table = _table(f"{title}\n{describe(first)}", [
        ("model", "left"), ("buckets", "right"), ("payload / step (checked)", "right"), ("trace step", "right"),
        ("step median / p90", "right"), ("exposed comm", "right"), ("comm busy", "right"), ("E(N)", "right")])
    for r in records:
        table.add_row(r["model"], str(len(r["bucket_bytes"])), fmt_bytes(r["payload_bytes"]),
                      _opt_ms(r.get("trace_step_s") or r.get("compute_time_1_s")),
                      f"{fmt_ms(r['step_time_s'])} / {fmt_ms(r['step_time_p90_s'])}", fmt_ms(r["exposed_comm_s"]),
                      fmt_ms(r["comm_busy_s"]), _pct(r.get("projected_efficiency")))
    table.caption = ("E(N) = trace step / replayed step (weak scaling)" if trace else
                     "E(N) projected: t(1) / (t(1) + comm), t(1) the nodes=1 step outside exposed comm")
    return table


SHORT = {"ring": "ring", "hierarchical_ring": "hier. ring", "double_binary_tree": "2-tree", "halving_doubling":
         "halv.-doub.", "binomial_tree": "binomial", "ps": "ps", "ps_sharded": "ps sharded"}


def predict_answer(out: dict[str, Any]) -> str:
    """The one line that answers: the ring's efficiency and step at N, or its comm where compute is unknown."""
    ring, net = out["at_nodes"]["ring"], out["network"]
    where = f"{out['model']} at N={out['nodes']} on {fmt_rate(net['bandwidth_bits_per_s'])} (ring)"
    if ring["efficiency"] is None:
        return f"{where}: {fmt_ms(ring['comm_s'])} of all-reduce per step; compute unknown: no E"
    return (f"{where}: {ring['efficiency']:.1%} efficient, step {fmt_ms(ring['step_s'])} of which "
            f"{fmt_ms(ring['exposed_comm_s'])} exposed comm")


def _head(out: dict[str, Any]) -> list[str]:
    """What the prediction stands on, a line each (wrapped here: the console never breaks a line)."""
    net = out["network"]
    topology = "" if out["gpus_per_node"] == 1 else f"; {out['gpus_per_node']} ranks per node" + (
        f", intra-node {out['intra_network']['bandwidth_bits_per_s'] / 1e9:.3g} Gbit/s" if out["intra_network"] else "")
    lines = [f"  gradients: {fmt_bytes(sum(out['buckets']))} in {len(out['buckets'])} bucket(s), {out['backend']}",
             f"  network: alpha {net['alpha_s'] * 1e6:.2f} us, {net['bandwidth_bits_per_s'] / 1e9:.3g} Gbit/s "
             f"({net['source']}){topology}",
             "  compute: " + (f"{fmt_ms(out['compute_s'])} per step" if out["compute_s"] else "unknown: comm only")
             + f" ({out['trace_source']})"]
    if out["compute_s"]:
        o, said = out["overheads"], out["overheads"]["source"]
        lines += [f"  added: DDP {o['ddp_per_tensor_s'] * 1e6:.1f} us x {o['tensors']} tensors ({said['ddp_per_tensor_s']}); "
                  f"backward {o['interference']:.1%} slower beside collectives ({said['interference']}); "
                  f"stragglers, spread {o['jitter']:.2%} ({said['jitter']})",
                  f"  efficiency against {out['efficiency_baseline']}"]
    return [textwrap.fill(line, ANSWER_COLUMNS, subsequent_indent="    ") for line in lines]


def predict_tables(out: dict[str, Any]) -> Group:
    algorithms = list(out["at_nodes"])
    at = _table(f"at N={out['nodes']}, per all-reduce algorithm (no-overlap bound: format=json)",
                [("algorithm", "left"), ("comm (sum)", "right"), ("exposed", "right"),
                 ("DDP+interf.+stragg.", "right"), ("step", "right"), ("E", "right")])
    for alg, p in out["at_nodes"].items():
        added = " + ".join(f"{1e3 * p[k]:.1f}" for k in ("ddp_s", "interference_s", "straggler_s")) + " ms"
        at.add_row(alg, fmt_ms(p["comm_s"]), _opt_ms(p["exposed_comm_s"]), added if p["step_s"] is not None else "-",
                   _opt_ms(p["step_s"]), _pct(p["efficiency"]))
    known = out["compute_s"] is not None
    by_n = _table("E(N) by N" if known else "comm per step by N (compute unknown)",
                  [("N", "right")] + [(SHORT[a], "right") for a in algorithms])
    for row in out["by_nodes"]:
        by_n.add_row(str(row["nodes"]), *(_pct(row[a]["efficiency"]) if known else fmt_ms(row[a]["comm_s"])
                                          for a in algorithms))
    by_n.caption = "step times: format=json"
    rank = _table(f"the zoo ranked by ring comm at N={out['nodes']}; E where a nodes=1 trace gives the compute",
                  [("#", "right"), ("model", "left"), ("payload", "right"), ("buckets", "right"),
                   ("comm / step", "right"), ("E", "right")])
    for i, r in enumerate(out["ranking"], start=1):
        rank.add_row(str(i), r["model"], fmt_bytes(r["payload_bytes"]), str(r["buckets"]), fmt_ms(r["comm_s"]),
                     _pct(r["efficiency"]))
    return Group(predict_answer(out), *_head(out), at, by_n, rank)


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def short_errors(values: list[float | None]) -> str:
    """'1.5% (max 3.5%, 6)': mean |error|, max and how many."""
    got = [abs(v) for v in values if v is not None]
    return f"{sum(got) / len(got):.1%} (max {max(got):.1%}, {len(got)})" if got else "none"


def validate_tables(rows: list[dict[str, Any]]) -> Group:
    parts = []
    timeline = [r for r in rows if r["comparison"] == "timeline"]
    if timeline:
        table = _table("step time: predicted (ring) vs trace replay (compute as sleep) vs trained run", [
                           ("model", "left"), ("N", "right"), ("link", "left"), ("trace", "left"), ("predicted", "right"),
                           ("replay", "right"), ("run", "right"), ("pred. vs replay", "right"),
                           ("replay vs run", "right")])
        for r in timeline:
            table.add_row(r["model"], str(r["nodes"]), r["link"].removeprefix("emulated "), r["trace"],
                          fmt_ms(r["predicted_step_s"]), fmt_ms(r["replay_step_s"]), _opt_ms(r["run_step_s"]),
                          _err(r["predict_vs_replay"]), _err(r["replay_vs_run"]))
        table.caption = ("exposed comm and the network each prediction used: format=json")
        parts += [f"step time, predict vs replay: {short_errors([r['predict_vs_replay'] for r in timeline])}; "
                  f"replay vs run: {short_errors([r['replay_vs_run'] for r in timeline])}", table]
    comm = [r for r in rows if r["comparison"] == "comm_only"]
    if comm:
        table = _table("alpha-beta (busbw fit) vs measured comm-only replay, ring all-reduce",
                       [("model", "left"), ("N", "right"), ("payload", "right"), ("measured", "right"),
                        ("predicted", "right"), ("error", "right")])
        for r in comm:
            table.add_row(r["model"], str(r["nodes"]), fmt_bytes(r["payload_bytes"]), fmt_ms(r["measured_s"]),
                          fmt_ms(r["predicted_s"]), _err(r["error"]))
        parts += [f"comm-only replays against the busbw fit: {short_errors([r['error'] for r in comm])}", table]
    return Group(*parts)


def published_summary(rows: list[dict[str, Any]]) -> str:
    """Mean and max |predicted - published| E in points: over the checked rows no default was taken
    from, and over those of sources no default was taken from."""
    from commbench.results.published import held_out

    def figures(kept: list[dict[str, Any]], unit: str = "", rows: str = "") -> str:
        got = [abs(r["delta_points"]) for r in kept]
        return f"{sum(got) / len(got):.1f}{unit}, max {max(got):.1f} ({len(got)}{rows})" if got else "none"

    # independent: rows of sources other than the one the defaults came from
    return (f"vs published E(N): mean |ΔE| {figures(held_out(rows), ' points', ' rows')}; "
            f"independent sources: {figures(held_out(rows, other_sources=True))}")


def published_table(rows: list[dict[str, Any]]) -> Group:
    def table(title: str, kept: list[dict[str, Any]]) -> Table:
        out = _table(title, [("source", "left"), ("model", "left"), ("GPUs", "right"), ("published", "right"),
                             ("predicted", "right"), ("Δ points", "right"),
                             ("DDP + interf. + straggler + exposed", "right")])
        for r in kept:
            terms = " + ".join(f"{1e3 * r[k]:.1f}" for k in ("ddp_s", "interference_s", "straggler_s", "exposed_comm_s"))
            out.add_row(r["source"], r["model"] + (" *" if r["sets_default"] else ""), str(r["gpus"]),
                        _pct(r["published_e"]), _pct(r["predicted_e"]), f"{r['delta_points']:+.1f}", terms + " ms")
        return out

    checked = table("predicted vs published E(N) on real GPU clusters, the same defaults for every row",
                    [r for r in rows if r["checked"]])
    checked.caption = ("* sets the interference default (the mean leaves it out, and the other sources leave out "
                       "its source); sources: commbench/results/published_scaling.yaml")
    outside = [r for r in rows if not r["checked"]]
    parts = [published_summary(rows), checked]
    if outside:
        out = table("outside what the predictor models, for reference: not in the summary", outside)
        out.caption = "\n".join(dict.fromkeys(f"{r['source']}: {r['why']}" for r in outside))
        parts.append(out)
    return Group(*parts)
