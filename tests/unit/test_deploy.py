"""The Kubernetes manifests under deploy/: they parse, their tritune command is one the CLI
accepts, their spec is valid, the names that tie them together agree, and the database URL
reaches tritune through TRITUNE_STORAGE, never through its arguments."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from analyzer.cli.main import main
from analyzer.spec.spec import parse_spec
from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def test_the_manifests_tie_together_and_match_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = documents()
    job = docs[("Job", "tritune-sweep")]["spec"]
    assert job["parallelism"] == job["completions"] >= 2
    pod = job["template"]["spec"]
    (worker,) = pod["containers"]
    (triton,) = pod["initContainers"]
    assert triton["restartPolicy"] == "Always"  # a sidecar, so the pod ends with tritune
    # The command: environment references resolved as Kubernetes would, then parsed by Click
    # exactly as the CLI parses it (an unknown or malformed option fails here), with the pod's
    # environment: the storage URL comes from the secret through TRITUNE_STORAGE.
    env = {e["name"]: e for e in worker["env"]}
    ref = env["TRITUNE_STORAGE"]["valueFrom"]["secretKeyRef"]
    secret = docs[("Secret", ref["name"])]["stringData"]
    args = [re.sub(r"\$\((\w+)\)", lambda m: f"<{m.group(1)}>", a) for a in worker["args"]]
    assert worker["command"] == ["tritune"] and args[0] == "sweep"
    assert "--storage" not in args and not any("TRITUNE_STORAGE" in a or "://" in a for a in args)
    monkeypatch.setenv("TRITUNE_STORAGE", secret[ref["key"]])
    ctx = main.commands["sweep"].make_context("sweep", args[1:])
    assert ctx.params["storage"] == secret[ref["key"]] and ctx.params["study"]
    url = make_url(secret[ref["key"]])
    assert url.drivername == "postgresql+psycopg"
    service = docs[("Service", url.host)]["spec"]
    assert service["ports"][0]["port"] == url.port
    # The spec the workers share is valid, and tunes the pod's own Triton.
    mount = next(m for m in worker["volumeMounts"] if ctx.params["spec_file"].startswith(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    data = docs[("ConfigMap", volume["configMap"]["name"])]["data"]
    spec = parse_spec(yaml.safe_load(data[Path(ctx.params["spec_file"]).name]), "job.yaml")
    assert spec.url == f"localhost:{triton['ports'][0]['containerPort']}"
    assert "--model-control-mode=explicit" in triton["command"]
    postgres = docs[("StatefulSet", url.host)]["spec"]["template"]["spec"]["containers"][0]
    pg_env = {e["name"]: e for e in postgres["env"]}
    assert pg_env["POSTGRES_USER"]["value"] == url.username and pg_env["POSTGRES_DB"]["value"] == url.database
