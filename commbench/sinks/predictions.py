"""Console tables of the step timeline: trace replays, predictions and their validation."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from commbench.results.setup import describe
from commbench.sinks.console import _opt_ms, _pct, _table, fmt_bytes, fmt_ms


def replay_table(records: list[dict[str, Any]]) -> Table:
    """One row per replayed model: trace replays (compute as sleep) or back-to-back buckets."""
    first = records[0]
    trace = first.get("mode", "back_to_back") == "trace"
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


def _head(out: dict[str, Any]) -> str:
    net = out["network"]
    topology = "" if out["gpus_per_node"] == 1 else f"; {out['gpus_per_node']} ranks per node" + (
        f", intra-node {out['intra_network']['bandwidth_bits_per_s'] / 1e9:.3g} Gbit/s" if out["intra_network"] else "")
    compute = (f"compute {fmt_ms(out['compute_s'])} per step" if out["compute_s"]
               else "compute unknown (run nodes=1 or give compute_s=): comm only")
    o, said = out["overheads"], out["overheads"]["source"]
    head = (f"{out['model']}: {fmt_bytes(sum(out['buckets']))} in {len(out['buckets'])} bucket(s); {compute} "
            f"({out['trace_source']}); network alpha {net['alpha_s'] * 1e6:.2f} us, "
            f"{net['bandwidth_bits_per_s'] / 1e9:.3g} Gbit/s ({net['source']}){topology}; {out['backend']}")
    if not out["compute_s"]:
        return head
    return (f"{head}\nadded per step: DDP {o['ddp_per_tensor_s'] * 1e6:.1f} us x {o['tensors']} gradient tensors "
            f"({said['ddp_per_tensor_s']}); backward {o['interference']:.1%} slower beside collectives "
            f"({said['interference']}); stragglers, compute spread {o['jitter']:.2%} ({said['jitter']}); "
            f"efficiency against {out['efficiency_baseline']}")


def predict_tables(out: dict[str, Any]) -> Group:
    algorithms = list(out["at_nodes"])
    at = _table(f"predicted at N={out['nodes']}: the step simulated from the trace (overlap), and the no-overlap "
                "bound (every collective after compute)",
                [("algorithm", "left"), ("comm (sum)", "right"), ("exposed comm", "right"),
                 ("DDP + interf. + straggler", "right"), ("step", "right"), ("efficiency", "right"),
                 ("no-overlap step", "right"), ("no-overlap eff.", "right")])
    for alg, p in out["at_nodes"].items():
        added = " + ".join(f"{1e3 * p[k]:.1f}" for k in ("ddp_s", "interference_s", "straggler_s")) + " ms"
        at.add_row(alg, fmt_ms(p["comm_s"]), _opt_ms(p["exposed_comm_s"]), added if p["step_s"] is not None else "-",
                   _opt_ms(p["step_s"]), _pct(p["efficiency"]), _opt_ms(p["no_overlap_step_s"]),
                   _pct(p["no_overlap_efficiency"]))
    by_n = _table("step (efficiency) by N; comm only where compute is unknown", [("N", "right")] + [(a, "right") for a in algorithms])
    for row in out["by_nodes"]:
        by_n.add_row(str(row["nodes"]), *(f"{fmt_ms(row[a]['step_s'] if row[a]['step_s'] is not None else row[a]['comm_s'])}"
                                         f" ({_pct(row[a]['efficiency'])})" for a in algorithms))
    rank = _table(f"which model's gradients cost least here? ranked by predicted ring comm at N={out['nodes']}; "
                  "exposed comm and efficiency where a nodes=1 trace gives the compute",
                  [("#", "right"), ("model", "left"), ("payload", "right"), ("buckets", "right"), ("comm / step", "right"),
                   ("compute / step", "right"), ("exposed comm", "right"), ("efficiency", "right")])
    for i, r in enumerate(out["ranking"], start=1):
        rank.add_row(str(i), r["model"], fmt_bytes(r["payload_bytes"]), str(r["buckets"]), fmt_ms(r["comm_s"]),
                     _opt_ms(r["compute_s"]), _opt_ms(r["exposed_comm_s"]), _pct(r["efficiency"]))
    return Group(_head(out), at, by_n, rank)


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def error_summary(values: list[float | None]) -> str:
    got = [abs(v) for v in values if v is not None]
    return f"mean |error| {sum(got) / len(got):.1%}, max {max(got):.1%} over {len(got)}" if got else "none"


def validate_tables(rows: list[dict[str, Any]]) -> Group:
    parts = []
    timeline = [r for r in rows if r["comparison"] == "timeline"]
    if timeline:
        table = _table("step time: predicted timeline (ring) vs trace replay (compute as sleep) vs trained run; "
                       "exposed comm in brackets", [
                           ("model", "left"), ("N", "right"), ("link", "left"), ("trace", "left"), ("predicted", "right"),
                           ("replay", "right"), ("run", "right"), ("predict vs replay", "right"),
                           ("replay vs run", "right"), ("network for prediction", "left")])
        for r in timeline:
            run = "-" if r["run_step_s"] is None else f"{fmt_ms(r['run_step_s'])} ({_opt_ms(r['run_exposed_s'])})"
            table.add_row(r["model"], str(r["nodes"]), r["link"], r["trace"], f"{fmt_ms(r['predicted_step_s'])} "
                          f"({fmt_ms(r['predicted_exposed_s'])})", f"{fmt_ms(r['replay_step_s'])} "
                          f"({fmt_ms(r['replay_exposed_s'])})", run, _err(r["predict_vs_replay"]),
                          _err(r["replay_vs_run"]), r["network"])
        table.caption = (f"predict vs replay: {error_summary([r['predict_vs_replay'] for r in timeline])}; "
                         f"replay vs run: {error_summary([r['replay_vs_run'] for r in timeline])}")
        parts.append(table)
    comm = [r for r in rows if r["comparison"] == "comm_only"]
    if comm:
        table = _table("alpha-beta (busbw fit) vs measured comm-only replay, ring all-reduce",
                       [("model", "left"), ("N", "right"), ("payload", "right"), ("measured", "right"),
                        ("predicted", "right"), ("error", "right")])
        for r in comm:
            table.add_row(r["model"], str(r["nodes"]), fmt_bytes(r["payload_bytes"]), fmt_ms(r["measured_s"]),
                          fmt_ms(r["predicted_s"]), _err(r["error"]))
        table.caption = error_summary([r["error"] for r in comm])
        parts.append(table)
    return Group(*parts)


def published_summary(rows: list[dict[str, Any]]) -> str:
    """Mean and max |predicted - published| E in points: over the checked rows no default was taken
    from, and over those of sources no default was taken from."""
    from commbench.results.published import held_out

    def line(kept: list[dict[str, Any]], what: str) -> str:
        got = [abs(r["delta_points"]) for r in kept]
        return (f"mean |ΔE| {sum(got) / len(got):.1f} points, max {max(got):.1f}, over the {len(got)} {what}"
                if got else f"no {what}")

    return (line(held_out(rows), "rows that set no default") + "; "
            + line(held_out(rows, other_sources=True), "rows of other sources"))


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

    checked = table("predicted vs published E(N) on real GPU clusters, the same defaults for every row "
                    "(* sets the interference default)", [r for r in rows if r["checked"]])
    checked.caption = "sources: commbench/results/published_scaling.yaml"
    outside = [r for r in rows if not r["checked"]]
    parts = [published_summary(rows), checked]
    if outside:
        out = table("outside what the predictor models, for reference: not in the summary", outside)
        out.caption = "\n".join(dict.fromkeys(f"{r['source']}: {r['why']}" for r in outside))
        parts.append(out)
    return Group(*parts)
