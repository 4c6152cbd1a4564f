"""deploy/kuberay/rayjob.yaml against the RayJob CRD of the pinned KubeRay release (its `ray.io/v1`
openAPIV3Schema, kept in tests/data): types and required fields by jsonschema, and, as the API
server's pruning would silently drop them, every field the schema does not know refused here;
then what the backfill needs from it (a CPU head, GPU workers, S3 by service account)."""
from __future__ import annotations

import gzip
import os
import shlex

import jsonschema
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAYJOB = os.path.join(ROOT, "deploy", "kuberay", "rayjob.yaml")
CRD = os.path.join(ROOT, "tests", "data", "kuberay-v1.7.0-ray.io_rayjobs.yaml.gz")


def _schema() -> dict:
    with gzip.open(CRD, "rt") as f:
        crd = yaml.safe_load(f)
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def unknown_fields(doc, schema: dict, path: str = "") -> list[str]:
    """Paths of the fields in `doc` that `schema` does not declare (where it keeps no unknown
    fields: no additionalProperties, no x-kubernetes-preserve-unknown-fields)."""
    found = []
    if isinstance(doc, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if props is not None and key in props:
                found += unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(value, extra, f"{path}.{key}")
            elif props is not None and not extra and not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}")
    elif isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def check(doc: dict) -> None:
    schema = _schema()
    jsonschema.validate(doc, schema)
    bad = unknown_fields(doc, schema)
    if bad:
        raise ValueError(f"fields the RayJob CRD does not know: {', '.join(bad)}")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    with open(RAYJOB) as f:
        return yaml.safe_load(f)


def test_rayjob_passes_the_crd_schema_and_a_typo_fails(rayjob):
    check(rayjob)
    typo = yaml.safe_load(open(RAYJOB))
    typo["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 8
    with pytest.raises(ValueError, match="maxReplica"):
        check(typo)
    wrong_type = yaml.safe_load(open(RAYJOB))
    wrong_type["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = "none"
    with pytest.raises(jsonschema.ValidationError):
        check(wrong_type)


def test_rayjob_runs_the_backfill_on_gpu_workers_with_s3_by_service_account(rayjob):
    spec = rayjob["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["python", "-m", "ray_jobs.backfill"] and "--input" in argv and "--output" in argv
    from ray_jobs.backfill import build_parser

    build_parser().parse_args(argv[3:])                        # the options exist
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    workers = cluster["workerGroupSpecs"]
    assert len(workers) == 1 and workers[0]["minReplicas"] <= workers[0]["replicas"] <= workers[0]["maxReplicas"]
    for pod in (head["template"]["spec"], workers[0]["template"]["spec"]):
        assert pod["serviceAccountName"] == "sogs-backfill"
    limits = workers[0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    text = open(RAYJOB).read()
    assert "aws_secret_access_key" not in text.lower() and "AKIA" not in text and "AWS_SECRET" not in text
    # the image named is the one the Dockerfile builds, on the Ray the cluster spec states
    dockerfile = open(os.path.join(ROOT, "deploy", "kuberay", "Dockerfile")).read()
    assert f"rayproject/ray:{cluster['rayVersion']}-" in dockerfile
