"""docker/: the image and the compose cluster agree with commbench's CLI and with Ray's conventions.

Static checks need no Docker engine. `docker compose config` / `docker-compose config` run where either
is installed. The end-to-end test (marker `docker`) is opt-in with COMMBENCH_DOCKER_E2E=1: it makes a
base image with debootstrap, builds the commbench image on it, starts a head and one worker and runs a
2-worker job against them (docker/README.md, "Tests").

docker/README.md's driver command (the one `cluster=compose` command it shows) and its `--scale` are the
ones checked here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKER_README = DOCKER / "README.md"
DOCKERIGNORE = REPO / ".dockerignore"

# The documented way to run the job on the compose cluster (docker/README.md, step 3).
DRIVER_CMD = ("docker compose -f docker/docker-compose.yml exec ray-head python -m commbench "
              "cluster=compose model=squeezenet nodes=8 results_dir=/results")
UP_CMD = "docker compose -f docker/docker-compose.yml up -d --scale ray-worker=7"


# ---------------------------------------------------------------------------------------------------
# helpers


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def defaults(text: str) -> str:
    """Compose's ${VAR:-default} / ${VAR} interpolation with nothing set in the environment."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)


def command(service: dict) -> list[str]:
    cmd = service["command"]
    return shlex.split(defaults(cmd)) if isinstance(cmd, str) else [defaults(c) for c in cmd]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def volume_targets(service: dict) -> dict[str, str]:
    """container path -> host source of each bind/named volume."""
    out = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = v.get("source", "")
        else:
            src, _, rest = defaults(v).partition(":")
            out[rest.split(":")[0]] = src
    return out


def dockerfile_lines() -> list[str]:
    """Instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def dockerfile_args() -> dict[str, str | None]:
    args = {}
    for line in dockerfile_lines():
        m = re.match(r"ARG\s+(\w+)(?:=(.*))?$", line)
        if m:
            value = m.group(2)
            if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            args[m.group(1)] = value
    return args


def readme_driver_commands() -> list[str]:
    return [l.strip() for l in DOCKER_README.read_text().splitlines()
            if "python -m commbench " in l and "cluster=compose" in l]


def overrides(cmd: str) -> list[str]:
    """The command-line overrides after `python -m commbench`."""
    words = shlex.split(cmd)
    i = words.index("commbench")
    assert words[i - 2:i] == ["python", "-m"], cmd
    return words[i + 1:]


def compose_tools() -> dict[str, list[str]]:
    tools = {}
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        tools["docker compose"] = ["docker", "compose"]
    if shutil.which("docker-compose"):
        tools["docker-compose"] = ["docker-compose"]
    return tools


# ---------------------------------------------------------------------------------------------------
# the compose file


def test_head_and_scalable_worker_on_one_network():
    c = compose()
    services = c["services"]
    assert {"ray-head", "ray-worker"} <= set(services)
    nets = [set(s["networks"]) for s in (services["ray-head"], services["ray-worker"])]
    assert nets[0] == nets[1] and len(nets[0]) == 1, nets
    assert nets[0] <= set(c.get("networks") or {})
    worker = services["ray-worker"]
    # --scale needs a worker without a fixed container name or a fixed published host port.
    assert "container_name" not in worker and not worker.get("ports")


def test_head_runs_ray_start_head_blocking():
    head = compose()["services"]["ray-head"]
    cmd = command(head)
    assert cmd[:3] == ["ray", "start", "--head"], cmd
    assert "--port=6379" in cmd and "--block" in cmd
    assert any(a.startswith("--num-cpus=") for a in cmd)
    # The dashboard: listens on all interfaces in the container, published on the host's loopback.
    assert "--dashboard-host=0.0.0.0" in cmd and "--dashboard-port=8265" in cmd
    assert any(defaults(str(p)).endswith(":8265") for p in head["ports"]), head["ports"]


def test_worker_joins_the_head_blocking():
    worker = compose()["services"]["ray-worker"]
    cmd = command(worker)
    assert cmd[:2] == ["ray", "start"], cmd
    assert "--address=ray-head:6379" in cmd and "--block" in cmd and "--head" not in cmd
    assert any(re.fullmatch(r"--num-cpus=\d+", a) for a in cmd), cmd
    deps = worker["depends_on"]
    assert "ray-head" in (deps if isinstance(deps, list) else list(deps))


def test_shm_results_volume_and_auth_mode_on_every_ray_service():
    services = compose()["services"]
    modes = set()
    for name in ("ray-head", "ray-worker"):
        s = services[name]
        assert s.get("shm_size"), f"{name}: Ray's object store needs a larger /dev/shm"
        assert "/results" in volume_targets(s), f"{name}: no volume at /results"
        env = environment(s)
        assert "RAY_AUTH_MODE" in env, f"{name}: RAY_AUTH_MODE unset"
        modes.add(env["RAY_AUTH_MODE"])
    assert modes == {"disabled"}, modes
    # Head and workers mount the same host directory (Ray Train's storage_path lives there).
    assert len({volume_targets(services[n])["/results"] for n in ("ray-head", "ray-worker")}) == 1


def test_object_store_fits_the_shm():
    """Ray sizes its object store from host RAM and falls back to /tmp when /dev/shm is smaller."""
    units = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    for name in ("ray-head", "ray-worker"):
        s = compose()["services"][name]
        shm = re.fullmatch(r"(\d+)([bkmg])b?", str(s["shm_size"]).lower())
        [store] = [int(a.split("=")[1]) for a in command(s) if a.startswith("--object-store-memory=")]
        assert 75 * 2**20 <= store < int(shm.group(1)) * units[shm.group(2)], (name, store, s["shm_size"])


def test_dashboard_port_only_with_the_dashboard_installed():
    """ray[train] alone has no dashboard; publishing 8265 is honest only with ray[default]."""
    ray_spec = dockerfile_args()["RAY_SPEC"]
    extras = re.search(r"\[([^\]]*)\]", ray_spec)
    assert extras and {"default", "train"} <= {e.strip() for e in extras.group(1).split(",")}, ray_spec


def test_compose_build_args_are_the_dockerfiles():
    build = compose()["services"]["ray-head"]["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE
    declared = dockerfile_args()
    for key, value in build["args"].items():
        assert key in declared, f"compose passes {key}, the Dockerfile has no ARG {key}"
        assert defaults(str(value)) == (declared[key] or ""), f"{key}: compose and Dockerfile defaults differ"


# ---------------------------------------------------------------------------------------------------
# the Dockerfile


def test_base_image_is_a_build_arg_defaulting_to_python311_slim():
    lines = dockerfile_lines()
    first_from = next(i for i, l in enumerate(lines) if l.startswith("FROM"))
    assert lines[first_from] in ("FROM ${BASE_IMAGE}", "FROM $BASE_IMAGE")
    before = [l for l in lines[:first_from] if l.startswith("ARG BASE_IMAGE")]
    assert before, "ARG BASE_IMAGE must come before FROM"
    base = dockerfile_args()["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base or ""), base


def test_extra_ca_cert_is_an_optional_build_arg():
    assert dockerfile_args()["EXTRA_CA_CERT"] == ""
    runs = [l for l in dockerfile_lines() if l.startswith("RUN") and "EXTRA_CA_CERT" in l]
    assert len(runs) == 1
    run = runs[0]
    assert re.search(r'if \[ -n "\$EXTRA_CA_CERT" \]; then', run), run
    assert "update-ca-certificates" in run.split('-n "$EXTRA_CA_CERT"', 1)[1]
    # The certificate comes from docker/certs/, which the build context keeps.
    assert any(l.startswith("COPY docker/certs/") for l in dockerfile_lines())
    assert (DOCKER / "certs").is_dir()
    # pip, requests and ssl all read the system bundle that the extra CA is added to.
    text = DOCKERFILE.read_text()
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        assert f"{var}=/etc/ssl/certs/ca-certificates.crt" in text, var


def test_torch_pair_and_ray_are_inside_the_projects_ranges():
    tomllib = pytest.importorskip("tomllib")
    specifiers = pytest.importorskip("packaging.requirements")
    deps = {}
    for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = specifiers.Requirement(d)
        deps[req.name] = req.specifier
    args = dockerfile_args()
    pins = dict(re.fullmatch(r"([\w-]+)==([\w.+]+)", w).groups() for w in args["TORCH_SPEC"].split())
    assert set(pins) == {"torch", "torchvision"}, pins
    for name, version in pins.items():
        assert deps[name].contains(version), f"{name}=={version} outside pyproject's {deps[name]}"
    # A matching pair: torchvision 0.(N+15) goes with torch 2.N.
    t_minor = int(pins["torch"].split(".")[1])
    assert pins["torchvision"].split(".")[:2] == ["0", str(t_minor + 15)], pins
    ray = re.fullmatch(r"ray\[[\w,]+\]==([\w.]+)", args["RAY_SPEC"])
    assert ray and deps["ray"].contains(ray.group(1)), args["RAY_SPEC"]


def test_image_installs_commbench_from_what_the_context_sends():
    lines = dockerfile_lines()
    copies = [l.split()[1:-1] for l in lines if l.startswith("COPY")]
    sources = [s for c in copies for s in c]
    for needed in ("pyproject.toml", "README.md", "commbench", "conf"):
        assert needed in sources, f"the image does not copy {needed}"
    assert any(re.search(r"pip install /\S*commbench-src(\s|$)", l) for l in lines)
    # .dockerignore excludes everything but what is copied: each source is re-included.
    ignore = [l.strip() for l in DOCKERIGNORE.read_text().splitlines()]
    for src in sources:
        assert (REPO / src).exists(), src
        assert f"!{src}" in ignore or f"!{src.rstrip('/')}/" in ignore, f".dockerignore drops {src}"


# ---------------------------------------------------------------------------------------------------
# the documented commands


def test_readme_documents_the_driver_command_and_the_scale():
    text = DOCKER_README.read_text()
    assert readme_driver_commands() == [DRIVER_CMD]
    assert UP_CMD in text
    workers = int(re.search(r"--scale ray-worker=(\d+)", UP_CMD).group(1))
    nodes = next(int(o.split("=")[1]) for o in overrides(DRIVER_CMD) if o.startswith("nodes="))
    assert nodes == workers + 1, "one worker slot per node: the head and the scaled workers"
    for needed in ("RAY_AUTH_MODE", "EXTRA_CA_CERT", "BASE_IMAGE", "TORCH_INDEX_URL", "/results"):
        assert needed in text, needed


def test_driver_command_runs_in_a_service_and_writes_to_the_volume():
    words = shlex.split(DRIVER_CMD)
    service = words[words.index("exec") + 1]
    assert service in compose()["services"]
    results = next(o.split("=", 1)[1] for o in overrides(DRIVER_CMD) if o.startswith("results_dir="))
    assert results in volume_targets(compose()["services"][service])


def test_driver_command_parses_with_commbenchs_config():
    [cmd] = readme_driver_commands()
    out = subprocess.run([sys.executable, "-m", "commbench", "--cfg", "job", *overrides(cmd)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    job = yaml.safe_load(out.stdout)
    assert job["cluster"]["kind"] == "compose" and job["cluster"]["address"] == "ray-head:6379"
    service = next(n for n, s in compose()["services"].items() if s.get("hostname") == "ray-head")
    assert "--port=6379" in command(compose()["services"][service]), "cluster=compose's address is the head's"
    assert job["model"]["name"] == "squeezenet" and job["nodes"] == 8
    assert job["results_dir"] == "/results"


# ---------------------------------------------------------------------------------------------------
# the compose tools


@pytest.mark.parametrize("tool", ["docker compose", "docker-compose"])
def test_compose_config_accepts_the_file(tool):
    tools = compose_tools()
    if tool not in tools:
        pytest.skip({"docker compose": "the docker compose plugin (Compose v2) is not installed",
                     "docker-compose": "docker-compose (Compose v1) is not installed: "
                                       "apt-get install docker-compose"}[tool])
    out = subprocess.run([*tools[tool], "-f", str(COMPOSE_FILE), "config"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = subprocess.run([*tools[tool], "-f", str(COMPOSE_FILE), "config", "--services"],
                              capture_output=True, text=True, timeout=60)
    assert {"ray-head", "ray-worker"} <= set(services.stdout.split()), services.stdout


# ---------------------------------------------------------------------------------------------------
# end to end (opt-in)

E2E_BASE = "commbench-e2e-base:bookworm"
E2E_IMAGE = "commbench:e2e"
E2E_PROJECT = "commbench-e2e"
E2E_CA = "e2e-host-ca.crt"


def _run(cmd: list[str], env: dict, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def _alive_nodes(status: str) -> int:
    active = status.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return len(re.findall(r"^\s*\d+\s+node_\w+", active, flags=re.MULTILINE))


@pytest.mark.docker
@pytest.mark.skipif(os.environ.get("COMMBENCH_DOCKER_E2E") != "1",
                    reason="opt-in: COMMBENCH_DOCKER_E2E=1 builds images and starts a compose cluster")
def test_compose_cluster_runs_a_two_worker_job(tmp_path):
    tools = compose_tools()
    if not tools:
        pytest.fail("no compose tool: install docker-compose or the docker compose plugin")
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        pytest.fail("no Docker engine answers `docker info` (start dockerd)")
    tool = tools.get("docker compose") or tools["docker-compose"]
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "COMMBENCH_IMAGE": E2E_IMAGE, "COMMBENCH_RESULTS": str(results),
           "COMPOSE_PROJECT_NAME": E2E_PROJECT, "RAY_DASHBOARD_PORT": os.environ.get("RAY_DASHBOARD_PORT", "18265")}
    dc = [*tool, "-f", str(COMPOSE_FILE), "-p", E2E_PROJECT]

    # 1. A base image made here: no registry needed.
    base = os.environ.get("COMMBENCH_DOCKER_BASE_IMAGE", E2E_BASE)
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode != 0:
        if base != E2E_BASE:
            pytest.fail(f"COMMBENCH_DOCKER_BASE_IMAGE={base} does not exist")
        if not shutil.which("debootstrap") or os.geteuid() != 0:
            pytest.fail("making the base image needs root and debootstrap (apt-get install debootstrap)")
        _run(["bash", str(DOCKER / "make-base-image.sh"), base], env, timeout=1800)
    env["BASE_IMAGE"] = base

    # 2. The host's CA bundle, for a TLS-intercepting proxy between the build and the package index.
    ca_src = os.environ.get("COMMBENCH_DOCKER_CA_CERT",
                            os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    ca_copy = DOCKER / "certs" / E2E_CA
    try:
        if ca_src and Path(ca_src).is_file():
            shutil.copyfile(ca_src, ca_copy)
            env["EXTRA_CA_CERT"] = E2E_CA
        _run([*dc, "build"], env, timeout=float(os.environ.get("COMMBENCH_DOCKER_BUILD_TIMEOUT", "3600")))
    finally:
        ca_copy.unlink(missing_ok=True)

    # 3. A head and one worker; 4. the documented driver command at 2 nodes with tiny steps.
    logs = ""
    try:
        _run([*dc, "up", "-d", "--scale", "ray-worker=1"], env, timeout=300)
        deadline, status = time.time() + 180, ""
        while time.time() < deadline:
            out = _run([*dc, "exec", "-T", "ray-head", "ray", "status"], env, timeout=60, check=False)
            status = out.stdout
            if _alive_nodes(status) >= 2:
                break
            time.sleep(3)
        assert _alive_nodes(status) == 2, f"the cluster did not reach 2 nodes:\n{status}"

        args = [o for o in overrides(DRIVER_CMD) if not o.startswith("nodes=")]
        args += ["nodes=2", "steps=2", "warmup=1", "batch_size=2"]
        out = _run([*dc, "exec", "-T", "ray-head", "python", "-m", "commbench", *args], env,
                   timeout=900, check=False)
        assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"

        lines = (results / "runs.jsonl").read_text().splitlines()
        [record] = [json.loads(l) for l in lines if l.strip()]
        assert record["status"] == "ok", record.get("error")
        assert record["model"] == "squeezenet" and record["nodes"] == 2
        assert (record["cluster_kind"], record["cluster_address"]) == ("compose", "ray-head:6379")
        # --object-store-memory fits the 2 GB shm: Ray keeps the store in /dev/shm, not /tmp
        logs = _run([*dc, "logs", "ray-head", "ray-worker"], env, timeout=120).stdout
        assert "instead of /dev/shm" not in logs, logs[-3000:]
        assert len(record["worker_hosts"]) == 2, record["worker_hosts"]  # head and worker: two containers
        assert record["grad_bytes_per_step"] == 4 * record["params"]
    except BaseException:
        logs = _run([*dc, "logs", "--tail", "60"], env, timeout=120, check=False).stdout
        print(logs[-8000:])
        raise
    finally:
        _run([*dc, "down", "-v", "--remove-orphans"], env, timeout=300, check=False)
