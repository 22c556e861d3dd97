"""launch/kuberay/: the RayJob and RayCluster manifests are valid KubeRay objects, agree with each other,
with docker/ and with the results volume, and run a command commbench accepts.

No Kubernetes cluster: the manifests are validated offline against KubeRay's CRD schemas
(../shared/reference/kuberay/, ray-project/kuberay at feeaf72fa), beside the repository (CI lays shared/
there); those tests skip without them. Broken copies of the manifests, mistakes a user could make, must
fail the same checks.

launch/kuberay/README.md's commands (the RayJob's entrypoint, the RayCluster's exec line, the pod that
copies results out) are checked against the manifests.
"""

from __future__ import annotations

import copy
import re
import shlex
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBERAY = REPO / "launch" / "kuberay"
CRDS = REPO.parent / "shared" / "reference" / "kuberay"
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
MANIFESTS = sorted(KUBERAY.glob("*.yaml"))
RESULTS = "/results"  # where the commands write and where every pod mounts the results claim
SIZE_KEYS = ("replicas", "minReplicas", "maxReplicas")
# KubeRay's controller (ray-operator/controllers/ray/utils/validation.go), not in the CRD schemas: names
# are DNS-1035 labels, a RayCluster's at most 53 characters, a RayJob's 47 (its cluster adds 6).
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47}


# ---------------------------------------------------------------------------------------------------
# helpers


def documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def ray_manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path, doc in documents() if doc["kind"] in CRD_FILES]


def manifest(kind: str) -> dict:
    [doc] = [doc for _, doc in documents() if doc["kind"] == kind]
    return doc


def claims() -> set[str]:
    return {doc["metadata"]["name"] for _, doc in documents() if doc["kind"] == "PersistentVolumeClaim"}


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def groups(doc: dict) -> list[tuple[str, dict]]:
    """(name, group spec) of the head group and each worker group."""
    spec = cluster_spec(doc)
    return [("head", spec["headGroupSpec"])] + [(g.get("groupName"), g) for g in spec["workerGroupSpecs"]]


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]  # KubeRay's Ray container is the first


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def quantity(q) -> float:
    """A Kubernetes quantity in base units (2Gi, 1073741824, 500m)."""
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kMGT]i?|Ki|m)?", str(q))
    assert m and (m.group(2) or "") in units, f"not a quantity this test reads: {q!r}"
    return float(m.group(1)) * units[m.group(2) or ""]


def commands(path: Path, doc: dict) -> list[str]:
    """Every commbench command a manifest gives: a RayJob's entrypoint and those in its comments."""
    found = [doc["spec"]["entrypoint"]] if doc["kind"] == "RayJob" else []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and "python -m commbench " in line:
            found.append(line[line.index("python -m commbench "):].strip())
    return found


def overrides(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    assert words[:3] == ["python", "-m", "commbench"], cmd
    return words[3:]


def nodes_of(cmd: str) -> list[int]:
    [value] = [o.split("=", 1)[1] for o in overrides(cmd) if o.startswith("nodes=")]
    return [int(n) for n in value.split(",")]


def compose_env() -> dict[str, str]:
    """docker-compose.yml's node environment, ${VAR:-default} read as its default."""
    node = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())["x-ray-node"]
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in node["environment"].items()}


# ---------------------------------------------------------------------------------------------------
# the checks (each returns what is wrong, so the broken cases below can show they catch it)


@cache
def crd(kind: str) -> dict:
    if not CRDS.is_dir():
        pytest.skip(f"KubeRay's CRD schemas are not at {CRDS} (the shared/ folder beside the repository)")
    return yaml.safe_load((CRDS / CRD_FILES[kind]).read_text())


def schema(kind: str) -> dict:
    [v1] = [v for v in crd(kind)["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def unknown_fields(value, node: dict, path: str = "$") -> list[str]:
    """Keys the schema does not declare. The CRD schemas leave additionalProperties out, which JSON Schema
    reads as "anything goes"; Kubernetes reads it as "no other fields" (kubectl's strict field validation
    rejects them, else the API server drops them silently): a typo'd key would be lost, not reported."""
    if isinstance(value, list) and "items" in node:
        return [e for i, v in enumerate(value) for e in unknown_fields(v, node["items"], f"{path}[{i}]")]
    if not isinstance(value, dict) or node.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(node.get("additionalProperties"), dict):  # a map: rayStartParams, resources.limits
        return [e for k, v in value.items() for e in unknown_fields(v, node["additionalProperties"], f"{path}.{k}")]
    props = node.get("properties")
    if props is None:  # metadata (ObjectMeta) and other objects the CRD leaves open
        return []
    return [e for k, v in value.items()
            for e in ([f"{path}.{k}: unknown field"] if k not in props else unknown_fields(v, props[k], f"{path}.{k}"))]


def schema_errors(doc: dict) -> list[str]:
    """What the API server would refuse: the CRD's OpenAPI v3 schema (JSON Schema draft 4 underneath;
    `format: int32` and the x-kubernetes-* keys are not checked, int-or-string is its anyOf) and
    unknown fields. KubeRay's CEL rules (x-kubernetes-validations) are on fields these manifests leave out."""
    kind = doc.get("kind")
    group = crd(kind)["spec"]["group"]
    errors = [] if doc.get("apiVersion") == f"{group}/v1" else [f"$.apiVersion: {doc.get('apiVersion')!r} is not {group}/v1"]
    errors += [f"{e.json_path}: {e.message}" for e in jsonschema.Draft4Validator(schema(kind)).iter_errors(doc)]
    return errors + unknown_fields(doc, schema(kind))


def size_problems(doc: dict, cmds: list[str]) -> list[str]:
    """nodes = worker pods + 1: every pod offers one Ray CPU, one commbench worker slot (commbench puts one
    worker on each node, STRICT_SPREAD), as in docker-compose.yml. A run fills the cluster; a sweep fits."""
    problems = []
    for name, group in groups(doc):
        cpus = group.get("rayStartParams", {}).get("num-cpus")
        if cpus != "1":
            problems.append(f"{name}: rayStartParams num-cpus is {cpus!r}, not '1' (one worker slot per pod)")
        if name != "head" and len({group.get(k) for k in SIZE_KEYS}) != 1:
            problems.append(f"{name}: {', '.join(f'{k}={group.get(k)}' for k in SIZE_KEYS)}: the size is one value")
    pods = 1 + sum(g.get("replicas", 0) for name, g in groups(doc) if name != "head")
    for cmd in cmds:
        nodes = nodes_of(cmd)
        sweep = "-m" in overrides(cmd) or "--multirun" in overrides(cmd)
        if (max(nodes) > pods) if sweep else (nodes != [pods]):
            problems.append(f"nodes={','.join(map(str, nodes))} but the cluster has {pods} pods: {cmd}")
    return problems


def name_problems(doc: dict) -> list[str]:
    name, limit = doc["metadata"].get("name", ""), NAME_LIMITS[doc["kind"]]
    ok = re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= limit
    return [] if ok else [f"{doc['kind']} name {name!r}: a DNS-1035 label of at most {limit} characters"]


# ---------------------------------------------------------------------------------------------------
# the manifests as written

RAY_MANIFESTS = [pytest.param(path, doc, id=path.name) for path, doc in ray_manifests()]


def test_there_is_a_rayjob_a_raycluster_and_the_results_claim():
    kinds = sorted(doc["kind"] for _, doc in documents())
    assert kinds == ["PersistentVolumeClaim", "RayCluster", "RayJob"], kinds


@pytest.mark.parametrize("path, doc", RAY_MANIFESTS)
def test_manifest_is_valid_against_kuberays_crd(path, doc):
    assert schema_errors(doc) == [], path.name
    assert name_problems(doc) == []


@pytest.mark.parametrize("path, doc", RAY_MANIFESTS)
def test_sizes_agree(path, doc):
    assert len(cluster_spec(doc)["workerGroupSpecs"]) == 1, "one worker group"
    assert commands(path, doc), f"{path.name} documents no commbench command"
    assert size_problems(doc, commands(path, doc)) == []


@pytest.mark.parametrize("path, doc", RAY_MANIFESTS)
def test_commands_plan_a_kuberay_run(path, doc, tmp_path):
    from commbench.overrides import checked_cells

    sweeps = 0
    for cmd in commands(path, doc):
        args = overrides(cmd)
        assert f"results_dir={RESULTS}" in args and "cluster=kuberay" in args, cmd
        # /results exists only in the pods: here precheck would test that / is writable (root only).
        args = [f"results_dir={tmp_path}" if a.startswith("results_dir=") else a for a in args]
        plans = checked_cells(args)  # a run's one cell, or a sweep's
        sweeps += "-m" in args
        assert sorted({p.nodes for p in plans}) == sorted(set(nodes_of(cmd))), cmd
        for plan in plans:
            assert (plan.cluster_kind, plan.cluster_address, plan.workers_per_node) == ("kuberay", "auto", 1)
    if doc["kind"] == "RayJob":
        assert sweeps == 1, "the sweep variant in rayjob.yaml's comments"


def test_rayjob_and_raycluster_make_the_same_cluster():
    assert manifest("RayJob")["spec"]["rayClusterSpec"] == manifest("RayCluster")["spec"]


def test_rayjob_deletes_its_cluster_when_done():
    spec = manifest("RayJob")["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    # The driver runs on the head (Ray's default) and takes none of its CPU: that slot is a worker's.
    assert "entrypointNumCpus" not in spec and "entrypointResources" not in spec


@pytest.mark.parametrize("path, doc", RAY_MANIFESTS)
def test_pods_mount_the_results_claim_and_a_shm_for_the_object_store(path, doc):
    for name, group in groups(doc):
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in ray_container(group)["volumeMounts"]}
        assert volumes[mounts[RESULTS]]["persistentVolumeClaim"]["claimName"] in claims(), name
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm["medium"] == "Memory", name
        limits = ray_container(group)["resources"]["limits"]
        # The object store fits in /dev/shm (else Ray falls back to /tmp), and the tmpfs, which counts in
        # the pod's memory, leaves room for Ray and the worker.
        assert quantity(group["rayStartParams"]["object-store-memory"]) <= quantity(shm["sizeLimit"]), name
        assert quantity(shm["sizeLimit"]) <= quantity(limits["memory"]) / 2, name


@pytest.mark.parametrize("path, doc", RAY_MANIFESTS)
def test_pods_run_the_image_with_the_compose_clusters_environment(path, doc):
    containers = [ray_container(g) for _, g in groups(doc)]
    assert {c["image"] for c in containers} == {"commbench:latest"}  # docker-compose.yml's default name
    for c in containers:
        assert env(c) == compose_env(), c["name"]  # RAY_AUTH_MODE, usage stats, W&B offline under /results
        assert env(c)["WANDB_DIR"] == RESULTS
        resources = c["resources"]
        assert resources["requests"] == resources["limits"] and set(resources["limits"]) == {"cpu", "memory"}
    cpus = {quantity(c["resources"]["limits"]["cpu"]) for c in containers}
    assert len(cpus) == 1, "every pod's worker gets the same torch threads (a node's cores)"


def test_ray_version_is_the_images():
    args = re.findall(r"^ARG RAY_SPEC=\"?ray\[[\w,]+\]==([\w.]+)", (REPO / "docker" / "Dockerfile").read_text(), re.M)
    for _, doc in ray_manifests():
        assert [cluster_spec(doc)["rayVersion"]] == args


def test_results_claim_is_shared_by_every_pod():
    [(path, pvc)] = [(p, d) for p, d in documents() if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["apiVersion"] == "v1" and pvc["metadata"]["name"] == "commbench-results"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", pvc["metadata"]["name"])
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "pods on several nodes write at once"
    assert quantity(pvc["spec"]["resources"]["requests"]["storage"]) >= 2**30
    assert path.name == "results-pvc.yaml", "applied once, apart from the runs"


def test_readme_documents_the_commands():
    text = (KUBERAY / "README.md").read_text()
    [exec_line] = [c for p, d in ray_manifests() if d["kind"] == "RayCluster" for c in commands(p, d)]
    assert exec_line in text
    assert manifest("RayJob")["spec"]["entrypoint"] in text
    for needed in ("kubectl apply -f launch/kuberay/results-pvc.yaml", "kubectl logs", "kubectl cp",
                   "runs.jsonl", "wandb/", "ray/", "feeaf72fa"):
        assert needed in text, needed
    # The pod that copies results out mounts the same claim.
    [reader] = re.findall(r"<<'EOF'\n(.*?)\nEOF", text, re.S)
    pod = yaml.safe_load(reader)
    assert pod["kind"] == "Pod" and pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] in claims()
    assert pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] == RESULTS


# ---------------------------------------------------------------------------------------------------
# broken manifests: each is a mistake a user could make, and each must fail


def _set(path: str, value):
    """A change at a dotted path: `job.` the RayJob's spec, `cluster.` its cluster spec, `head.` and
    `worker.` the groups; `container` is a pod's Ray container, numbers are list indices."""
    def change(doc: dict) -> None:
        *keys, last = path.split(".")
        node = {"job": doc["spec"], "head": cluster_spec(doc)["headGroupSpec"],
                "worker": cluster_spec(doc)["workerGroupSpecs"][0], "cluster": cluster_spec(doc)}[keys[0]]
        for key in keys[1:]:
            node = node["containers"][0] if key == "container" else node[int(key) if key.isdigit() else key]
        if value is _DELETE:
            del node[last]
        elif isinstance(value, _Rename):
            node[value.new] = node.pop(last)
        else:
            node[last] = value
    return change


_DELETE = object()


class _Rename:
    def __init__(self, new: str):
        self.new = new


BROKEN = {  # id -> (change, what the error says)
    "boolean quoted": (_set("job.shutdownAfterJobFinishes", "true"), "'true' is not of type 'boolean'"),
    "num-cpus unquoted": (_set("head.rayStartParams.num-cpus", 1), "1 is not of type 'string'"),
    "env value unquoted": (_set("worker.template.spec.container.env.1.value", 0), "0 is not of type 'string'"),
    "replicas quoted": (_set("worker.replicas", "7"), "'7' is not of type 'integer'"),
    "memory in GB": (_set("worker.template.spec.container.resources.limits.memory", "4GB"), "does not match"),
    "shm size with a space": (_set("head.template.spec.volumes.1.emptyDir.sizeLimit", "2 Gi"), "does not match"),
    "no maxReplicas": (_set("worker.maxReplicas", _DELETE), "'maxReplicas' is a required property"),
    "no groupName": (_set("worker.groupName", _DELETE), "'groupName' is a required property"),
    "no containers": (_set("head.template.spec.containers", _DELETE), "'containers' is a required property"),
    "container without a name": (_set("worker.template.spec.container.name", _DELETE), "'name' is a required property"),
    "job typo": (_set("job.shutdownAfterJobFinishes", _Rename("shutdownAfterJobFinish")),
                 "$.spec.shutdownAfterJobFinish: unknown field"),
    "worker groups typo": (_set("cluster.workerGroupSpecs", _Rename("workerGroupSpec")), "workerGroupSpec: unknown field"),
    "volume mounts typo": (_set("head.template.spec.container.volumeMounts", _Rename("volumeMount")),
                           "volumeMount: unknown field"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_rayjob_fails_validation(case):
    change, message = BROKEN[case]
    doc = copy.deepcopy(manifest("RayJob"))
    change(doc)
    errors = schema_errors(doc)
    assert errors, f"{case}: the broken manifest passed"
    assert any(message in e for e in errors), errors


def test_typos_pass_json_schema_alone():
    """Why unknown_fields exists: jsonschema by itself lets a misspelt key through."""
    doc = copy.deepcopy(manifest("RayJob"))
    _set("job.shutdownAfterJobFinishes", _Rename("shutdownAfterJobFinish"))(doc)
    assert not list(jsonschema.Draft4Validator(schema("RayJob")).iter_errors(doc))
    assert unknown_fields(doc, schema("RayJob")) == ["$.spec.shutdownAfterJobFinish: unknown field"]


def test_int_or_string_accepts_both():
    """cpu: 2 (an integer) and cpu: "2" are both valid quantities: the anyOf is read as Kubernetes does."""
    doc = copy.deepcopy(manifest("RayJob"))
    _set("worker.template.spec.container.resources.limits.cpu", 2)(doc)
    _set("worker.template.spec.container.resources.requests.cpu", "2000m")(doc)
    assert schema_errors(doc) == []


@pytest.mark.parametrize("case, change, problem", [
    ("one worker fewer", _set("worker.replicas", 6), "replicas=6"),
    ("an autoscaling range", _set("worker.maxReplicas", 10), "the size is one value"),
    ("a head without a worker slot", _set("head.rayStartParams.num-cpus", "0"), "num-cpus is '0'"),
    ("two slots a pod", _set("worker.rayStartParams.num-cpus", "2"), "num-cpus is '2'"),
    ("nodes too many", _set("job.entrypoint", manifest("RayJob")["spec"]["entrypoint"].replace("nodes=8", "nodes=9")),
     "nodes=9 but the cluster has 8 pods"),
])
def test_size_mismatches_are_caught(case, change, problem):
    doc = copy.deepcopy(manifest("RayJob"))
    change(doc)
    problems = size_problems(doc, commands(KUBERAY / "rayjob.yaml", doc))
    assert any(problem in p for p in problems), (case, problems)


def test_a_sweep_larger_than_the_cluster_is_caught():
    sweep = "python -m commbench cluster=kuberay -m model=alexnet nodes=4,16 results_dir=/results"
    assert size_problems(manifest("RayJob"), [sweep]) == [f"nodes=4,16 but the cluster has 8 pods: {sweep}"]


def test_a_bad_name_is_caught():
    doc = copy.deepcopy(manifest("RayJob"))
    doc["metadata"]["name"] = "commbench_squeezenet"  # underscores: not a DNS label
    assert name_problems(doc)
    doc["metadata"]["name"] = "c" * 48
    assert name_problems(doc)
