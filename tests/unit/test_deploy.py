"""The deployment as written: compose.yaml, the Dockerfile, the Alertmanager receiver and the systemd units.

There is no Docker engine on the build machines, so compose.yaml is checked against the Compose
Specification's JSON schema (the copy check-jsonschema ships, `vendor.compose-spec`) and for what the
schema cannot say: tokens required, health-gated start order, restart policies, mounted files present,
and Alertmanager's receiver pointing at the webhook with the secret compose mounts. The systemd units go
through `systemd-analyze verify`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from interfaces.api.webhook import WEBHOOK_PATH

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "docs" / "deploy"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "compose.yaml").read_text()))


def test_compose_file_follows_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = yaml.safe_load(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


def test_compose_requires_the_tokens_and_gates_start_on_health() -> None:
    raw = (REPO / "compose.yaml").read_text()
    for token in ("WEBHOOK_TOKEN", "API_TOKENS"):  # `${X:?message}`: compose refuses to start without it
        assert re.search(rf"\${{{token}:\?[^}}]+}}", raw), f"{token} is not required by compose.yaml"
    services = compose()["services"]
    for name, svc in services.items():
        if "demo" in svc.get("profiles", []):
            continue
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name}: no restart policy"
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, cond in deps.items():
            assert cond.get("condition") == "service_healthy", f"{name} -> {dep} is not health-gated"
            target = services[dep]
            has_check = "healthcheck" in target and not target["healthcheck"].get("disable")
            assert has_check or dep.startswith("aiops"), f"{name} waits for {dep}, which has no healthcheck"
    assert services["aiops"]["depends_on"].keys() >= {"redis", "postgres", "milvus"}
    assert services["alertmanager"]["depends_on"] == {"aiops": {"condition": "service_healthy"}}


def test_compose_mounts_files_that_exist() -> None:
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_alertmanager_receiver_reaches_the_webhook_with_the_mounted_token() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    route = config["route"]
    assert route["receiver"] == "aiops" and route["group_wait"] and route["group_interval"]
    # aiops's own alerts go to a human by another way, never back into aiops
    assert any(r["receiver"] != "aiops" and 'component="aiops"' in r["matchers"] for r in route["routes"])
    hook = next(r for r in config["receivers"] if r["name"] == "aiops")["webhook_configs"][0]
    assert hook["url"].endswith(WEBHOOK_PATH) and hook["send_resolved"] is True
    secret = compose()["secrets"]["webhook_token"]
    assert secret == {"environment": "WEBHOOK_TOKEN"}
    assert hook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/webhook_token"
    assert "webhook_token" in compose()["services"]["alertmanager"]["secrets"]


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    assert re.search(r"^HEALTHCHECK .*CMD .*/health", text, re.M | re.S)


@pytest.mark.parametrize("unit", ["aiops-serve.service", "aiops-worker@.service"])
def test_systemd_units_verify(unit: str, tmp_path: Path) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    command = re.search(r"^ExecStart=(\S+) (serve|worker)\b", text, re.M)
    assert command and command.group(1) == "/opt/aiops/.venv/bin/aiops"
    assert re.search(r"^User=aiops$", text, re.M) and re.search(r"^Restart=on-failure$", text, re.M)
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's aiops for the check
    aiops = REPO / ".venv" / "bin" / "aiops"
    copy = tmp_path / unit.replace("@.", "@1.")
    copy.write_text(text.replace(command.group(1), str(aiops if aiops.exists() else shutil.which("true"))))
    result = subprocess.run([verify, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if copy.name in line or "Unknown" in line]
    assert result.returncode == 0 and not problems, result.stderr
