"""`commbench dashboard`: a W&B report (wandb-workspaces) with the panels commbench's runs feed.

Two panel grids, each over its own runs:
- runs (job_type run): gradient bytes per step against parameters (log-log, a point per run),
  efficiency and exposed comm time against nodes (a point per run), per-layer bytes of each run;
- the sweeps' summary runs (job_type sweep-summary): efficiency and comm-time lines per model from
  their `scaling` table, the cross-model `layers` and `measured_vs_predicted` tables, and the report's
  images. The keys are the ones commbench.sinks.wandb_log and commbench.sweep log.
"""

from __future__ import annotations

from typing import Any

RUN_JOB, SUMMARY_JOB = "run", "sweep-summary"
IMAGE_KEYS = ["report/bytes_vs_params", "report/efficiency_vs_nodes", "report/comm_time_vs_nodes", "report/layers",
              "report/compression"]


def runset(entity: str, project: str, name: str, job_type: str, group: str | None):
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    filters = expr.Metric("JobType") == job_type
    if group:
        filters = expr.And(filters, expr.Metric("Group") == group)
    return wr.Runset(entity=entity, project=project, name=name, filters=filters)


def line_chart(table: str, y: str, title: str, layout):
    """A line per model from a summary table's rows (W&B's built-in line preset)."""
    import wandb_workspaces.reports.v2 as wr

    return wr.CustomChart(query={"summaryTable": {"tableKey": table}}, chart_name="wandb/line/v0",
                          chart_fields={"x": "nodes", "y": y, "stroke": "model"},
                          chart_strings={"title": title}, layout=layout)


def run_panels() -> list[Any]:
    import wandb_workspaces.reports.v2 as wr

    return [
        wr.ScatterPlot(title="Gradient bytes per step vs parameters (log-log)", x=wr.SummaryMetric("params"),
                       y=wr.SummaryMetric("grad_bytes_per_step"), log_x=True, log_y=True,
                       layout=wr.Layout(x=0, y=0, w=12, h=9)),
        wr.ScatterPlot(title="Scaling efficiency E(N) per run", x=wr.Config("nodes"),
                       y=wr.SummaryMetric("efficiency"), log_x=True, layout=wr.Layout(x=12, y=0, w=12, h=9)),
        wr.ScatterPlot(title="Exposed comm time per step (s) per run", x=wr.Config("nodes"),
                       y=wr.SummaryMetric("exposed_comm_s"), log_x=True, layout=wr.Layout(x=0, y=9, w=12, h=9)),
        wr.CustomChart(query={"summaryTable": {"tableKey": "layers"}}, chart_name="wandb/bar/v0",
                       chart_fields={"label": "layer", "value": "grad_bytes"},
                       chart_strings={"title": "Gradient bytes per layer"}, layout=wr.Layout(x=12, y=9, w=12, h=9)),
    ]


def summary_panels() -> list[Any]:
    import wandb_workspaces.reports.v2 as wr

    return [
        line_chart("scaling", "efficiency", "Scaling efficiency E(N) vs nodes", wr.Layout(x=0, y=0, w=12, h=9)),
        line_chart("scaling", "exposed_comm_s", "Exposed comm time per step (s) vs nodes",
                   wr.Layout(x=12, y=0, w=12, h=9)),
        wr.WeavePanelSummaryTable(table_name="bytes_vs_params", layout=wr.Layout(x=0, y=9, w=12, h=9)),
        wr.WeavePanelSummaryTable(table_name="measured_vs_predicted", layout=wr.Layout(x=12, y=9, w=12, h=9)),
        wr.WeavePanelSummaryTable(table_name="layers", layout=wr.Layout(x=0, y=18, w=12, h=10)),
        wr.WeavePanelSummaryTable(table_name="compression", layout=wr.Layout(x=12, y=18, w=12, h=10)),
        wr.MediaBrowser(title="commbench report charts", num_columns=2, media_keys=IMAGE_KEYS,
                        layout=wr.Layout(x=0, y=28, w=24, h=12)),
    ]


def build_report(entity: str, project: str, group: str | None = None, title: str | None = None):
    import wandb_workspaces.reports.v2 as wr

    scope = f" (sweep {group})" if group else ""
    return wr.Report(
        entity=entity, project=project, title=title or f"commbench: gradient bytes and scaling{scope}",
        description="How many bytes data-parallel training sends per step, and how it scales. "
                    "Made by `commbench dashboard`.",
        blocks=[
            wr.H1("Runs"),
            wr.P("One point per run: the fp32 gradient payload against model size, and E(N) = "
                 "throughput(N) / (N x throughput(1)) where a nodes=1 baseline exists."),
            wr.PanelGrid(runsets=[runset(entity, project, "runs", RUN_JOB, group)], panels=run_panels()),
            wr.H1("Sweep summaries"),
            wr.P("Cross-model tables and lines from the summary run each sweep ends with."),
            wr.PanelGrid(runsets=[runset(entity, project, "sweep summaries", SUMMARY_JOB, group)],
                         panels=summary_panels()),
        ],
    )
