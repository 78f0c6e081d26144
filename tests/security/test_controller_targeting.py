"""Finding 1, second half: `localhost` counted as reachable without any inventory.

The controller (`localhost`, `127.0.0.1`, `::1`, this machine's names) is a target only when the
inventory names it explicitly; anything else is a reported dry run and no playbook runs against it.
"""

from __future__ import annotations

import socket

import pytest

from core.models import ActionKind
from tests.security.local_hosts import write_inventory
from tools.ansible import AnsibleTool, HostNotInInventory, inventory_hosts, is_controller
from tools.catalog import CATALOG
from tools.executor import ActionExecutor


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "127.0.0.2", socket.gethostname()])
def test_the_controller_is_recognised_under_its_names(host):
    assert is_controller(host)
    assert not is_controller("web-01")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", socket.gethostname()])
def test_the_controller_is_not_a_target_without_an_inventory(host, tmp_path):
    assert not AnsibleTool(None).reachable(host)
    assert host not in inventory_hosts(None)
    other = write_inventory(tmp_path / "other.ini", {"web-01": None})
    assert not AnsibleTool(str(other)).reachable(host)
    with pytest.raises(HostNotInInventory):
        AnsibleTool(str(other)).run("restart_service.yml", host, {"service": "nginx"}, check=True)


def test_cleanup_on_localhost_without_inventory_is_only_a_dry_run(settings, tmp_path):
    ex = ActionExecutor(settings, inventory=None, infrastructure=False)
    action = CATALOG["cleanup_rotated_logs"].action("localhost")
    assert action.kind == ActionKind.CLEANUP_DISK
    assert "not in the inventory" in ex.preflight(action)
    result = ex.execute(action)
    assert result.status == "dry_run" and "not in the Ansible inventory" in result.output
    assert "only when the inventory names it" in result.output


def test_an_inventory_that_names_the_controller_makes_it_a_target(tmp_path):
    root = tmp_path / "sandbox"
    root.mkdir()
    inventory = write_inventory(tmp_path / "local.ini", {"localhost": root})
    tool = AnsibleTool(str(inventory))
    assert tool.reachable("localhost") and not tool.reachable("127.0.0.1")
    assert tool.run("restart_service.yml", "localhost", {"service": "nginx"}, check=True).status == "successful"
