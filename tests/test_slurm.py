"""launch/slurm/commbench.sbatch against a real SLURM: slurmctld, slurmd and munge on this machine,
two nodes in network namespaces with host names of their own (launch/slurm/one-machine.sh), jobs
submitted with sbatch as a user would.

What this covers: the script's whole path (the allocation read, the head's IP by srun, `commbench
check` before Ray, a Ray head by srun on the first node and a Ray worker node by srun on the second, the
join over the bridge, commbench as the driver, records and W&B files in the results folder, Ray stopped
at the end and on scancel, the exit status). What it cannot: nodes that are other machines (their own
file systems and /tmp, a results folder on network storage, a real network between them) and GPUs.
Needs root, iproute2 and Debian's slurmctld, slurmd, slurm-client and munge (.ci/run installs them).

In the default suite: the script run outside an allocation fails in one line. Marked slow: the three
jobs on the two-node SLURM (a sweep, bad input, scancel); launch/slurm/README.md has their times here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from commbench.results.store import read_records
from tests.ddp_harness import free_port
from tests.wandb_files import runs as wandb_runs

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "launch" / "slurm" / "commbench.sbatch"
ONE_MACHINE = REPO / "launch" / "slurm" / "one-machine.sh"
SMALL = ["steps=3", "warmup=1", "batch_size=4", "image_size=32"]
SQUEEZENET_PARAMS = 1_248_424


def no_slurm_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def test_outside_an_allocation_is_one_line():
    out = subprocess.run(["bash", str(SBATCH), "model=squeezenet"], capture_output=True, text=True,
                         env=no_slurm_env(), timeout=30)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == ["commbench.sbatch: not inside a SLURM allocation: submit it, "
                                       "sbatch --nodes=N launch/slurm/commbench.sbatch model=... nodes=..."]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-machine SLURM cluster: the environment that reaches it."""
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        if os.environ.get("CI"):  # .ci/run installs SLURM: a skip there would hide a broken install
            pytest.fail("CI has no root or no slurmctld; .ci/run installs slurmctld slurmd slurm-client munge")
        pytest.skip("needs root and slurmctld, slurmd, slurm-client, munge")
    conf_dir = tmp_path_factory.mktemp("slurm")
    env = {**no_slurm_env(), "SLURM_CONF": str(conf_dir / "slurm.conf"), "RAY_PORT": str(free_port())}
    try:
        start = subprocess.run([str(ONE_MACHINE), "start", str(conf_dir), "2"], capture_output=True, text=True,
                               timeout=120)
        assert start.returncode == 0, start.stderr
        yield env
    finally:
        subprocess.run([str(ONE_MACHINE), "stop", str(conf_dir)], timeout=60)


def sbatch(env: dict, folder: Path, *args: str, nodes: int = 2, wait: bool = True) -> subprocess.CompletedProcess:
    """Submit from `folder` (the job's working directory and its results), as a user would."""
    flags = ["--wait"] if wait else ["--parsable"]
    return subprocess.run(["sbatch", *flags, f"--nodes={nodes}", f"--output={folder}/slurm-%j.out", str(SBATCH), *args],
                          cwd=folder, env={**env, "COMMBENCH_RESULTS": str(folder / "results")},
                          capture_output=True, text=True, timeout=600)


def job_output(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("slurm-*.out")))


def ray_left(port: str) -> list[str]:
    """Processes of the Ray cluster this job started (its GCS and raylet name the head's port)."""
    out = subprocess.run(["pgrep", "-af", f"gcs_server.*{port}|raylet.*{port}"], capture_output=True, text=True)
    return out.stdout.splitlines()


@pytest.mark.slow  # ~90 s: Ray on two nodes, two worker groups
def test_sbatch_runs_a_sweep_on_two_nodes_and_stops_ray(slurm, tmp_path):
    out = sbatch(slurm, tmp_path, "-m", "model=squeezenet", "nodes=1,2", *SMALL)
    log = job_output(tmp_path)
    assert out.returncode == 0, log[-3000:]
    assert "commbench.sbatch: Ray head on n0 (10.232.0.1:" in log and "commbench.sbatch: 2 Ray node(s) joined" in log
    records = read_records(tmp_path / "results" / "runs.jsonl").records
    assert sorted(r["nodes"] for r in records) == [1, 2]
    address = f"10.232.0.1:{slurm['RAY_PORT']}"  # n0's address, as `hostname --ip-address` gives it there
    for r in records:
        assert (r["status"], r["cluster_kind"], r["cluster_address"]) == ("ok", "slurm", address)
        assert r["grad_bytes_per_step"] == 4 * SQUEEZENET_PARAMS
    [two] = [r for r in records if r["nodes"] == 2]
    assert sorted(two["worker_hosts"]) == ["n0", "n1"]  # one worker per node: the srun-started worker node served
    logged = [run for run in wandb_runs(tmp_path / "results") if run["config"].get("cluster_kind") == "slurm"]
    assert sorted(run["config"]["nodes"] for run in logged) == [1, 2]
    assert ray_left(slurm["RAY_PORT"]) == []


@pytest.mark.slow
def test_bad_input_is_one_line_before_ray(slurm, tmp_path):
    too_many = sbatch(slurm, tmp_path, "nodes=3")
    assert too_many.returncode == 2
    assert job_output(tmp_path).splitlines() == [
        "commbench.sbatch: nodes=3 is more than this allocation holds: 2 node(s) x 1 worker(s) per node = 2; "
        "sbatch --nodes=3, or fewer nodes="]
    for f in tmp_path.glob("slurm-*.out"):
        f.unlink()
    typo = sbatch(slurm, tmp_path, "model=squeezenett", nodes=1)
    assert typo.returncode == 2
    [line] = job_output(tmp_path).splitlines()
    assert line.startswith("commbench: error: unknown model 'squeezenett' (did you mean 'squeezenet'?)")
    assert not (tmp_path / "results" / "runs.jsonl").exists()


@pytest.mark.slow  # ~50 s
def test_scancel_stops_the_run_and_ray(slurm, tmp_path):
    job = sbatch(slurm, tmp_path, "model=squeezenet", "steps=1000", "warmup=1", "logging=none", wait=False).stdout.strip()
    deadline = time.monotonic() + 240
    while "timed steps" not in job_output(tmp_path):
        assert time.monotonic() < deadline, job_output(tmp_path)[-3000:]
        time.sleep(1)
    subprocess.run(["scancel", job], env=slurm, check=True)
    while subprocess.run(["squeue", "-h", "-j", job], env=slurm, capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the cancelled job did not end"
        time.sleep(1)
    log = job_output(tmp_path)
    assert "commbench.sbatch: cancelled" in log and "commbench: interrupted" in log
    assert "commbench.sbatch: stopping Ray" in log
    assert not (tmp_path / "results" / "runs.jsonl").exists()  # the cut run is not recorded
    assert ray_left(slurm["RAY_PORT"]) == []
