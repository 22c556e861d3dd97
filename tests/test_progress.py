"""A run's phases as the driver shows them (sinks/progress.py): piped, one line per phase in order, the
short ones too, and no redraws; in a terminal, one status line redrawn in place."""

from __future__ import annotations

from commbench.sinks.progress import Phases


def board_polls(phases: Phases) -> None:
    """What the driver reads from a worker group's board on successive polls of one cell."""
    phases.phase("starting Ray")
    phases.board({}, [], 0)
    phases.board({}, [], 1)  # 1 of 2 joined: the same phase, not a new line
    # Between two polls the model was built and the warmup done: both still get their line.
    phases.board({"phase": "timed steps (3)", "done": 1, "total": 3, "step_s": 0.05},
                 ["building the model", "warmup (1)", "timed steps (3)"], 2)
    phases.board({"phase": "timed steps (3)", "done": 3, "total": 3, "step_s": 0.04},
                 ["building the model", "warmup (1)", "timed steps (3)"], 2)
    phases.board({"phase": "gathering the figures"},
                 ["building the model", "warmup (1)", "timed steps (3)", "gathering the figures"], 2)
    phases.phase("writing the record")


def test_piped_phases_are_one_line_each_in_order(capsys):
    with Phases("squeezenet nodes=2", 2, live=False) as phases:
        board_polls(phases)
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines() == [f"  squeezenet nodes=2: {p}" for p in (
        "starting Ray", "starting 2 worker processes", "building the model", "warmup (1)", "timed steps (3)",
        "gathering the figures", "writing the record")]


def test_a_group_already_up_skips_the_start(capsys):
    with Phases("squeezenet nodes=2", 2, live=False) as phases:
        phases.board({}, [], 2)  # every worker joined earlier: nothing to wait for
        phases.board({"phase": "building the model"}, ["building the model"], 2)
    assert capsys.readouterr().out.splitlines() == ["  squeezenet nodes=2: building the model"]


def test_live_status_redraws_instead_of_printing(capsys):
    phases = Phases("squeezenet nodes=2", 2, live=True)
    with phases:
        board_polls(phases)
        assert phases.status is not None and phases.shown == "writing the record"
    assert "squeezenet nodes=2: starting Ray" not in capsys.readouterr().out
