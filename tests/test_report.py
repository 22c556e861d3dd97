"""The report sink on synthetic records: every chart a real PNG, summary.md with the exact numbers."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from commbench.results.store import append_record
from commbench.sinks.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
THROUGHPUT = {("alexnet", 1): 100.0, ("alexnet", 2): 150.0, ("alexnet", 4): 200.0,
              ("squeezenet", 1): 400.0, ("squeezenet", 2): 700.0, ("squeezenet", 4): 1000.0}
PARAMS = {"alexnet": 61_100_840, "squeezenet": 1_248_424}


def run(model, nodes, comm, **extra):
    params = PARAMS[model]
    layers = {f"{model}.layer{i}": 4 * (i + 1) * 1000 for i in range(20)}
    return {"model": model, "model_kwargs": {"num_classes": 1000}, "nodes": nodes, "status": "ok",
            "params": params, "grad_bytes_per_step": 4 * params, "sent_bytes_per_step": 0 if nodes == 1 else 4 * params,
            "throughput": THROUGHPUT[(model, nodes)], "step_time_s": 0.1, "compute_time_s": 0.08,
            "exposed_comm_s": comm, "comm_busy_s": comm, "layer_bytes": layers, "bandwidth_bits_per_s": None,
            "batch_size": 8, "image_size": 64, "compression": "none", "cluster_kind": "local",
            "worker_hosts": ["vm"], "host_cpus": 2, "threads_per_worker": 1, "collectives_per_step": 1,
            "loss_first": 6.9, "loss_last": 6.5, "steps": 20, **extra}


@pytest.fixture
def results(tmp_path):
    runs = tmp_path / "runs.jsonl"
    for model in PARAMS:
        for nodes, comm in ((1, 0.0), (2, 0.0123), (4, 0.5)):
            append_record(runs, run(model, nodes, comm))
    append_record(runs, {"model": "alexnet", "nodes": 8, "status": "failed", "error": "boom"})
    return tmp_path


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width = imread(path).shape[:2]
    assert height > 100 and width > 100


def test_writes_every_chart_and_summary(results):
    paths = write_report(results)
    names = sorted(p.name for p in paths)
    assert names == ["bytes_vs_params.png", "comm_time_vs_nodes.png", "efficiency_vs_nodes.png",
                     "layers_alexnet.png", "summary.md"]  # layers default: the model with the most bytes
    for p in paths:
        assert p.exists() and p.parent == results / "report"
        if p.suffix == ".png":
            assert_png(p)


def test_summary_has_the_exact_numbers(results):
    md = next(p for p in write_report(results) if p.name == "summary.md").read_text()
    assert "244.40" in md and "4.99" in md  # 244_403_360 and 4_993_696 bytes per step
    assert "61,100,840" in md
    eff = {n: 100 * THROUGHPUT[("alexnet", n)] / (n * THROUGHPUT[("alexnet", 1)]) for n in (1, 2, 4)}
    row = next(line for line in md.splitlines() if line.startswith("| alexnet"))
    for n in (1, 2, 4):
        assert f"{eff[n]:.1f}%" in row  # 100.0%, 75.0%, 50.0%
    assert "12.30" in row and "500.00" in row  # exposed comm, ms
    squeeze = next(line for line in md.splitlines() if line.startswith("| squeezenet"))
    assert "87.5%" in squeeze and "62.5%" in squeeze
    assert "N=8" not in md  # the failed run is skipped
    for name in ("bytes_vs_params.png", "efficiency_vs_nodes.png", "comm_time_vs_nodes.png", "layers_alexnet.png"):
        assert f"]({name})" in md


def test_layers_chart_for_the_model_asked(results):
    paths = write_report(results, model_for_layers="squeezenet")
    layers = [p for p in paths if p.name.startswith("layers_")]
    assert [p.name for p in layers] == ["layers_squeezenet.png"]
    assert_png(layers[0])


def test_a_model_id_names_its_chart_file(tmp_path):
    """A library's model is recorded by its id (timm/resnet18): the chart's file name holds no folder."""
    record = run("alexnet", 1, 0.0)
    append_record(tmp_path / "runs.jsonl", {**record, "model": "timm/resnet18"})
    paths = write_report(tmp_path, model_for_layers="timm/resnet18")
    [chart] = [p for p in paths if p.name.startswith("layers_")]
    assert chart.name == "layers_timm__resnet18.png" and chart.parent == tmp_path / "report"
    assert_png(chart)


def test_unknown_layers_model_is_a_value_error(results):
    with pytest.raises(ValueError, match="resnet"):
        write_report(results, model_for_layers="resnet")


def test_empty_or_missing_runs_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no runs.jsonl"):
        write_report(tmp_path)
    (tmp_path / "runs.jsonl").write_text("")
    with pytest.raises(ValueError, match="no successful runs"):
        write_report(tmp_path)
    append_record(tmp_path / "runs.jsonl", {"model": "alexnet", "nodes": 1, "status": "failed"})
    with pytest.raises(ValueError, match="no successful runs"):
        write_report(tmp_path)


def test_compressed_series_are_labelled_by_scheme_and_the_regime_comes_first(tmp_path):
    runs = tmp_path / "runs.jsonl"
    for nodes, comm in ((1, 0.0), (2, 0.0123)):
        append_record(runs, run("squeezenet", nodes, comm))
        append_record(runs, run("squeezenet", nodes, comm, compression="topk", compression_params={"ratio": 0.01},
                                grad_bytes_per_step=99_880))
    md = next(p for p in write_report(tmp_path) if p.name == "summary.md").read_text()
    lines = md.splitlines()
    start = lines.index(next(l for l in lines if l.startswith("| series |"))) + 2
    labels = [l.split("|")[1].strip() for l in lines[start:lines.index("", start)]]
    assert labels == ["squeezenet", "squeezenet topk ratio=0.01"]  # not "squeezenet (2)"
    first = md.splitlines()[2]
    assert first.startswith("**Scaling efficiency on one machine over loopback: no network crossed.**")
    assert "N=2: 2 workers on 2 cores over loopback: no network crossed" in first
    assert "fp32 unless the series names a scheme" in md


def test_no_baseline_no_efficiency_chart(tmp_path):
    append_record(tmp_path / "runs.jsonl", run("alexnet", 2, 0.01))
    names = {p.name for p in write_report(tmp_path)}
    assert "efficiency_vs_nodes.png" not in names and "comm_time_vs_nodes.png" in names
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "efficiency_vs_nodes.png" not in md


def test_the_headline_chart_prefers_runs_over_a_network(tmp_path):
    from commbench.results.scaling import headline_rows, scaling_rows

    emulated = dict(cluster_kind="emulated", bandwidth_bits_per_s=1e8)
    records = [run("alexnet", 1, 0.0), run("alexnet", 2, 0.01), run("alexnet", 1, 0.0, **emulated),
               run("alexnet", 2, 0.5, **emulated)]
    shown, title = headline_rows(scaling_rows(records))
    assert title == "Scaling efficiency over a network"
    assert {r["series"] for r in shown} == {"alexnet 100 Mbit/s"}
