"""`commbench dashboard`: a W&B report with commbench's panels, saved to entity/project."""

from __future__ import annotations

from commbench.errors import fail, first_line
from commbench.options import Command, Option
from commbench.settings import default

COMMAND = Command("dashboard", "Save a W&B report with commbench's panels to entity/project (needs a W&B key and "
                  "network).",
                  (Option("project", str, default("logging.wandb.project"), "W&B project"), Option("entity", str, None, "W&B user or team"),
                   Option("group", str, None, "only this run group"), Option("title", str, None, "the report's title")),
                  examples=("dashboard entity=my-team project=commbench",))


def main(argv: list[str]) -> None:
    opts, _ = COMMAND.parse(argv)
    from commbench.sinks import wandb_log
    from commbench.sinks.dashboard import build_report
    if not opts["entity"]:
        fail(f"dashboard needs entity=<your W&B user or team> (and project=, default {default('logging.wandb.project')})")
    base_url = wandb_log.server_url()
    if not wandb_log.api_key(base_url):
        fail(f"no W&B API key for {base_url}: set WANDB_API_KEY or run `wandb login`, then retry")
    report = build_report(opts["entity"], opts["project"], opts["group"], opts["title"])
    try:
        report.save()
    except Exception as exc:  # noqa: BLE001 - auth, network and server errors alike: one line
        fail(f"W&B report not saved to {opts['entity']}/{opts['project']}: {first_line(exc)}", code=1)
    print(report.url)
