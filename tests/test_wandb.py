"""W&B: what a run logs equals its record (read back from the offline files), a W&B that fails warns
once and never costs a result, and the dashboard's panel specification.

End-to-end runs through `python -m commbench` (real Ray) are in test_ray_run.py; these call the sink
directly where a real Ray run adds nothing.

W&B failing: an HTTP 500 server as WANDB_BASE_URL warns once and logs offline instead, and a W&B failing
offline too is turned off once; marked slow: W&B at a closed port, where the run still completes.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from commbench.sinks import wandb_log
from commbench.sinks.wandb_log import WandbConfigError, settings_from
from commbench.overrides import sweep_cells
from commbench.sweep import summary_tables
from tests.wandb_files import runs

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "x" * 40


def record(nodes: int = 2) -> dict:
    """A record as runner.build_record makes it (squeezenet's real bucket and top layers)."""
    per_step = {"step_time_s": [0.05, 0.06, 0.055], "compute_time_s": [0.04, 0.045, 0.044],
                "codec_time_s": [0.001] * 3, "exposed_comm_s": [0.006, 0.012, 0.007], "optimizer_time_s": [0.003] * 3,
                "payload_bytes": [4_993_696] * 3}
    return {
        "model": "squeezenet", "model_kwargs": {"num_classes": 1000}, "nodes": nodes, "steps": 3, "warmup": 1,
        "batch_size": 4, "image_size": 32, "seed": 0, "use_gpu": False, "bucket_cap_mb": 25.0,
        "broadcast_buffers": True, "compression": "none", "cluster_kind": "local", "cluster_address": None,
        "bandwidth_bits_per_s": None, "latency_s": None, "loss_percent": None, "config_hash": f"hash{nodes}",
        "status": "ok", "params": 1_248_424, "grad_bytes_per_step": 4_993_696, "sent_bytes_per_step": 4_993_696,
        "buffer_bytes_per_step": 0, "collectives_per_step": 1, "step_time_s": 0.055, "step_time_p90_s": 0.059,
        "compute_time_s": 0.044, "exposed_comm_s": 0.007, "exposed_comm_p90_s": 0.0142,
        "throughput": 145.45, "per_step": per_step,
        "buckets": [{"index": 0, "dtype": "float32", "numel": 1_248_424, "payload_bytes": 4_993_696, "params": 52}],
        "layer_bytes": {"classifier.1": 2_052_000, "features.12.expand3x3": 589_824, "features.0": 56_832},
        "wire_bytes_per_step": [5_300_000.0, 5_340_000.0], "wire_ratio": 1.065,
        "loss_first": 6.9, "loss_last": 6.1,
        "trace": {"buckets": [{"index": 0, "payload_bytes": 4_993_696, "dtype": "float32", "collective": "all_reduce"}],
                  "ranks": [{"rank": r, "forward_s": 0.01, "backward_s": 0.03, "codec_s": 0.001, "optimizer_s": 0.003,
                             "ready_offsets_s": [0.029]} for r in range(nodes)]},
    }


@pytest.fixture(autouse=True)
def fresh_sink():
    wandb_log.reset()
    yield
    wandb_log.reset()


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize("bad, message", [
    ({"mode": "onlin"}, "logging.wandb.mode must be one of offline, online, disabled, got 'onlin'"),
    ({"mode": "offline", "init_timeout_s": 0}, "logging.wandb.init_timeout_s must be a number > 0, got 0"),
    ({"mode": "offline", "tags": "a,b"}, "logging.wandb.tags must be a list, e.g. [a,b], got 'a,b'"),
])
def test_bad_settings_are_one_line(bad, message):
    with pytest.raises(WandbConfigError) as err:
        settings_from({"wandb": bad}, "/tmp")
    assert str(err.value) == message


def test_sweep_group_applies_where_config_sets_none():
    assert settings_from({"wandb": {"mode": "offline"}}, "/r", group="multirun-1").group == "multirun-1"
    assert settings_from({"wandb": {"mode": "offline", "group": "mine"}}, "/r", group="multirun-1").group == "mine"
    assert settings_from(None, "/r").mode == "disabled"


def test_sweep_size_is_the_product_of_the_sweep_lists():
    assert len(sweep_cells(["-m", "model=alexnet,squeezenet", "nodes=1,2,4,8", "steps=3"])) == 8
    assert len(sweep_cells(["--multirun", "nodes=range(1,4)"])) == 3
    assert len(sweep_cells(["-m", "nodes=2"])) == 1


# ---------------------------------------------------------------- offline files read back
def test_offline_run_holds_the_records_values(tmp_path):
    rec = record()
    settings = settings_from({"wandb": {"mode": "offline", "tags": ["mine"]}}, str(tmp_path), group="sweep-a")
    where = wandb_log.log_run(settings, rec, efficiency=0.75)
    [run] = runs(tmp_path)
    assert where == str(next((tmp_path / "wandb").glob("offline-run-*")) / "files")
    assert (run["project"], run["group"], run["job_type"], run["name"]) == ("commbench", "sweep-a", "run",
                                                                            "squeezenet-n2")
    assert run["tags"] == ["squeezenet", "nodes=2", "local", "compression=none", "mine"]
    assert run["exit_code"] == 0
    for key in ("model", "model_kwargs", "nodes", "batch_size", "compression", "cluster_kind", "config_hash"):
        assert run["config"][key] == rec[key], key
    # History: one row per timed step, the record's per-step figures.
    per = rec["per_step"]
    assert [h["step/step_time_s"] for h in run["history"]] == per["step_time_s"]
    assert [h["step/compute_time_s"] for h in run["history"]] == per["compute_time_s"]
    for key in ("codec_time_s", "exposed_comm_s", "optimizer_time_s"):
        assert [h[f"step/{key}"] for h in run["history"]] == per[key], key
    assert [h["step/payload_bytes"] for h in run["history"]] == per["payload_bytes"]
    assert [h["step/throughput"] for h in run["history"]] == pytest.approx([8 / t for t in per["step_time_s"]])
    # Summary: the record's medians and byte counts, the efficiency, the mean wire bytes.
    for key in ("params", "grad_bytes_per_step", "sent_bytes_per_step", "step_time_s", "exposed_comm_s",
                "throughput", "wire_ratio"):
        assert run["summary"][key] == rec[key], key
    assert run["summary"]["efficiency"] == 0.75
    assert run["summary"]["wire_bytes_per_step"] == 5_320_000.0
    # Tables: per bucket and per layer (largest first, with its share).
    assert run["tables"]["buckets"]["data"] == [[0, 4_993_696, 1_248_424, 52, "float32"]]
    layers = run["tables"]["layers"]
    assert layers["columns"] == ["layer", "grad_bytes", "share"]
    assert [row[:2] for row in layers["data"]] == [["classifier.1", 2_052_000], ["features.12.expand3x3", 589_824],
                                                   ["features.0", 56_832]]
    assert sum(row[2] for row in layers["data"]) == pytest.approx(1.0)
    # The step trace: as a table (a row per rank and bucket) and as the record's own field.
    assert run["tables"]["trace_buckets"]["data"] == [[r, 0, 4_993_696, "float32", "all_reduce", 0.029, 0.01, 0.03, 0.001, 0.003]
                                              for r in range(2)]
    assert run["summary"]["trace"] == rec["trace"]


def test_disabled_writes_nothing(tmp_path):
    settings = settings_from({"wandb": {"mode": "disabled"}}, str(tmp_path))
    assert wandb_log.log_run(settings, record()) is None
    assert not (tmp_path / "wandb").exists()


def test_summary_run_tables_and_images(tmp_path):
    """The sweep's summary run: cross-model tables from the records, line charts, the report PNGs."""
    from commbench.results.store import append_record
    from commbench.sweep import close_sweep

    one, two = record(1), record(2)
    one.update(sent_bytes_per_step=0, exposed_comm_s=0.0, throughput=100.0)
    two.update(throughput=150.0)
    for r in (one, two):
        append_record(tmp_path / "runs.jsonl", r)
    settings = settings_from({"wandb": {"mode": "offline"}}, str(tmp_path), group="multirun-x")
    paths = close_sweep(str(tmp_path), settings)
    assert (tmp_path / "report" / "summary.md") in paths
    [summary] = runs(tmp_path)
    assert (summary["job_type"], summary["group"], summary["name"]) == ("sweep-summary", "multirun-x",
                                                                        "summary-multirun-x")
    tables = summary["tables"]
    assert tables["bytes_vs_params"]["data"] == [["squeezenet", 1_248_424, 4_993_696]]
    columns = tables["scaling"]["columns"]
    scaling = {row[columns.index("nodes")]: dict(zip(columns, row)) for row in tables["scaling"]["data"]}
    assert scaling[2]["efficiency"] == pytest.approx(150.0 / (2 * 100.0))
    assert scaling[2]["exposed_comm_s"] == 0.007
    assert tables["layers"]["data"][0] == ["squeezenet", "classifier.1", 2_052_000]
    # wandb.plot.line_series: one line per series, x = nodes.
    eff = tables["efficiency_vs_nodes_table"]["data"]
    assert sorted((row[0], row[2]) for row in eff) == [(1, 1.0), (2, pytest.approx(0.75))]
    images = {k for k, v in summary["summary"].items() if isinstance(v, dict) and v.get("_type") == "image-file"}
    assert images == {"report/bytes_vs_params", "report/efficiency_vs_nodes", "report/comm_time_vs_nodes",
                      "report/layers"}
    assert "measured_vs_predicted" not in tables  # no busbw fits or replays in this folder


def test_measured_vs_predicted_table_where_fits_and_replays_exist():
    fits = [{"kind": "busbw", "nodes": 2, "fit": {"alpha_s": 1e-4, "beta_s_per_byte": 1e-9}}]
    replay = {"model": "squeezenet", "nodes": 2, "bucket_bytes": [4_993_696], "payload_bytes": 4_993_696,
              "mode": "back_to_back", "step_time_s": 0.006}
    from commbench.results.validation import validation_rows

    tables = summary_tables([record()], [], validation_rows(fits, [replay]))
    [[model, nodes, payload, measured, predicted, error]] = tables["measured_vs_predicted"][1]
    # Ring, N=2: 2(N-1) alpha + 2(N-1)/N n beta = 2e-4 + 4,993,696e-9 s.
    assert (model, nodes, payload, measured) == ("squeezenet", 2, 4_993_696, 0.006)
    assert predicted == pytest.approx(2e-4 + 4_993_696e-9)
    assert error == pytest.approx((predicted - 0.006) / 0.006)


# ---------------------------------------------------------------- W&B failing
class Always(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_GET(self):  # noqa: N802 - http.server's names
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Always)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_server_error_warns_once_and_logs_offline_instead(tmp_path, monkeypatch, capsys, failing_server):
    monkeypatch.setenv("WANDB_BASE_URL", failing_server)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    settings = settings_from({"wandb": {"mode": "online", "init_timeout_s": 5}}, str(tmp_path))
    t0 = time.monotonic()
    first = wandb_log.log_run(settings, record(1))
    assert time.monotonic() - t0 < 60
    t1 = time.monotonic()
    second = wandb_log.log_run(settings, record(2))  # offline now: no second wait on the server
    assert time.monotonic() - t1 < 20
    warnings = [l for l in capsys.readouterr().err.splitlines() if "W&B" in l]
    assert len(warnings) == 1 and warnings[0].startswith("commbench: warning: W&B online unavailable: CommError: ")
    assert warnings[0].endswith(f"logging offline to {tmp_path / 'wandb'} instead (`wandb sync` uploads it later)")
    assert settings.effective_mode == "offline"
    offline = runs(tmp_path)
    assert [r["name"] for r in offline] == ["squeezenet-n1", "squeezenet-n2"]
    assert {first, second} == {str(d / "files") for d in (tmp_path / "wandb").glob("offline-run-*")}
    assert offline[1]["summary"]["grad_bytes_per_step"] == 4_993_696


def test_failing_offline_turns_wandb_off_once(tmp_path, capsys):
    (tmp_path / "wandb").write_text("a file where W&B wants its folder")
    settings = settings_from({"wandb": {"mode": "offline"}}, str(tmp_path))
    assert wandb_log.log_run(settings, record()) is None
    assert wandb_log.log_run(settings, record()) is None
    warnings = [l for l in capsys.readouterr().err.splitlines() if "W&B" in l]
    assert len(warnings) == 1 and warnings[0].startswith("commbench: warning: W&B logging off: ")
    assert not settings.enabled


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commbench(*args: str, env: dict, timeout: float = 400):
    return subprocess.run([sys.executable, "-m", "commbench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


SMALL = ["model=squeezenet1_1", "nodes=2", "steps=3", "warmup=1", "batch_size=4", "image_size=32"]


@pytest.mark.slow  # the default suite keeps to 15 min on 2 cores
def test_unreachable_wandb_warns_once_and_the_run_completes(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    out = commbench(*SMALL, "logging.wandb.mode=online", f"results_dir={tmp_path}",
                    env={"WANDB_BASE_URL": url, "WANDB_API_KEY": FAKE_KEY})
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [l for l in out.stderr.splitlines() if "W&B" in l]
    assert warnings == [f"commbench: warning: W&B online unavailable: W&B server {url} unreachable (Connection "
                        f"refused); logging offline to {tmp_path / 'wandb'} instead (`wandb sync` uploads it later)"]
    from commbench.results.store import read_records

    [rec] = read_records(tmp_path / "runs.jsonl").records
    assert rec["status"] == "ok" and rec["grad_bytes_per_step"] == 4_941_984
    [run] = runs(tmp_path)  # logged offline, for `wandb sync` later
    assert run["summary"]["grad_bytes_per_step"] == 4_941_984 and run["config"]["config_hash"] == rec["config_hash"]


def test_required_wandb_without_a_key_fails_before_ray(tmp_path):
    out = commbench(*SMALL, "logging.wandb.mode=online", "logging.wandb.required=true", f"results_dir={tmp_path}",
                    env={"HOME": str(tmp_path), "WANDB_API_KEY": "", "WANDB_BASE_URL": "http://127.0.0.1:9"},
                    timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "commbench: error: no W&B API key for http://127.0.0.1:9 (set WANDB_API_KEY or run `wandb login`) "
        "(logging.wandb.required=true)"]
    assert not (tmp_path / "runs.jsonl").exists() and not (tmp_path / "ray").exists()


def test_bad_mode_is_one_line_before_ray(tmp_path):
    out = commbench(*SMALL, "logging.wandb.mode=sometimes", f"results_dir={tmp_path}", env={}, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "commbench: error: logging.wandb.mode must be one of offline, online, disabled, got 'sometimes'"]
    assert not (tmp_path / "runs.jsonl").exists()


# ---------------------------------------------------------------- dashboard
def serialized_report(monkeypatch, **kwargs) -> dict:
    """The report's JSON as save() would upload it; the one network call serialization makes (the
    project's id) is answered locally."""
    import wandb_workspaces.reports.v2.interface as wri

    from commbench.sinks.dashboard import build_report

    monkeypatch.setattr(wri, "_get_api", lambda: None)
    monkeypatch.setattr(wri, "execute_graphql", lambda api, q, v=None: {"project": {"internalId": "local"}})
    report = build_report("team", "commbench", **kwargs)
    return json.loads(report._to_model().model_dump_json(by_alias=True, exclude_none=True))


def table_keys(node) -> list[str]:
    """The summary-table keys a chart's query names, wherever they sit in its JSON."""
    if isinstance(node, dict):
        if node.get("name") == "tableKey":
            return [node["value"]]
        return [k for v in node.values() for k in table_keys(v)]
    if isinstance(node, list):
        return [k for v in node for k in table_keys(v)]
    return []


def panels_of(spec: dict) -> list[list[dict]]:
    grids = [b for b in spec["spec"]["blocks"] if b["type"] == "panel-grid"]
    return [g["metadata"]["panelBankSectionConfig"]["panels"] for g in grids]


def test_dashboard_panels_use_the_keys_commbench_logs(monkeypatch):
    spec = serialized_report(monkeypatch, group="multirun-x")
    assert spec["displayName"] == "commbench: gradient bytes and scaling (sweep multirun-x)"
    runs_grid, summary_grid = panels_of(spec)
    scatter = runs_grid[0]["config"]
    assert runs_grid[0]["viewType"] == "Scatter Plot"
    assert (scatter["xAxis"], scatter["yAxis"]) == ("summary:params", "summary:grad_bytes_per_step")
    assert scatter["xAxisLogScale"] and scatter["yAxisLogScale"]
    # Every summary metric a panel plots is one log_run writes.
    plotted = {p["config"]["yAxis"].removeprefix("summary:") for p in runs_grid if p["viewType"] == "Scatter Plot"}
    assert plotted <= set(wandb_log.SUMMARY_KEYS) | {"efficiency"}
    # Every table a chart reads is one commbench logs, and the columns it plots are that table's.
    compressed = {**record(), "compression": "fp16", "grad_bytes_per_step": 2_496_848, "config_hash": "fp16"}
    logged = summary_tables([record(), compressed], [{"model": "m", "nodes": 1, "efficiency": 1.0, "throughput": 1.0,
                                          "step_time_s": 1.0, "compute_time_s": 1.0, "exposed_comm_s": 0.0,
                                          "grad_bytes_per_step": 1, "sent_bytes_per_step": 0, "regime": ""}],
                            [{"model": "m", "nodes": 2, "payload_bytes": 1, "measured_s": 1.0, "predicted_s": 1.0,
                              "error": 0.0}])
    logged_columns = {name: set(cols) for name, (cols, _) in logged.items()}
    run_columns = {"layers": set(wandb_log.layer_rows(record())[0]), "buckets": set(wandb_log.bucket_rows(record())[0])}
    for grid, columns in ((runs_grid, run_columns), (summary_grid, logged_columns)):
        for panel in grid:
            if panel["viewType"] == "Vega2":
                key = table_keys(panel["config"])
                assert len(key) == 1 and key[0] in columns, (key, sorted(columns))
                assert set(panel["config"]["fieldSettings"].values()) <= columns[key[0]], panel["config"]
    from commbench.sinks.dashboard import summary_panels

    weave = {p.table_name for p in summary_panels() if hasattr(p, "table_name")}
    assert weave == {"bytes_vs_params", "measured_vs_predicted", "layers", "compression"} and weave <= set(logged)
    media = [p for p in summary_grid if p["viewType"] == "Media Browser"]
    assert media and set(media[0]["config"]["mediaKeys"]) == {
        "report/bytes_vs_params", "report/efficiency_vs_nodes", "report/comm_time_vs_nodes", "report/layers",
        "report/compression"}
    grids = [b for b in spec["spec"]["blocks"] if b["type"] == "panel-grid"]
    filters = [[(f["key"]["name"], f["op"], f["value"]) for f in g["metadata"]["runSets"][0]["filters"]["filters"]]
               for g in grids]
    assert filters == [[("jobType", "=", "run"), ("group", "=", "multirun-x")],
                       [("jobType", "=", "sweep-summary"), ("group", "=", "multirun-x")]]


def test_dashboard_command_says_what_is_missing(tmp_path):
    no_entity = commbench("dashboard", env={}, timeout=60)
    assert no_entity.returncode == 2
    assert no_entity.stderr.strip().splitlines() == [
        "commbench: error: dashboard needs entity=<your W&B user or team> (and project=, default commbench)"]
    no_key = commbench("dashboard", "entity=team", env={"HOME": str(tmp_path), "WANDB_API_KEY": "",
                                                        "WANDB_BASE_URL": "http://127.0.0.1:9"}, timeout=60)
    assert no_key.returncode == 2
    assert no_key.stderr.strip().splitlines() == [
        "commbench: error: no W&B API key for http://127.0.0.1:9: set WANDB_API_KEY or run `wandb login`, then retry"]
