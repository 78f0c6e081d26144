"""Issue 11, blast radius: a plan touches at most MAX_TARGETS_PER_PLAN hosts and never more than
MAX_GROUP_FRACTION of an inventory group at once, whoever approves it."""

from __future__ import annotations

from agents.approval import blast_radius
from core.settings import load_settings
from tools.ansible import load_inventory
from tools.catalog import CATALOG


def restart(host: str):
    return CATALOG["restart_service"].action(host, service="nginx")


def test_too_many_hosts_in_one_plan_is_refused(tmp_path):
    s = load_settings(AIOPS_DATA_DIR=tmp_path)
    assert blast_radius([restart(f"h-{i}") for i in range(5)], s, {}) is None
    problem = blast_radius([restart(f"h-{i}") for i in range(6)], s, {})
    assert problem and "MAX_TARGETS_PER_PLAN (5)" in problem


def test_more_than_a_fraction_of_a_group_is_refused(tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nweb-[01:04]\n[db]\ndb-01\n")
    groups = load_inventory(str(inv)).groups
    assert groups["web"] == {"web-01", "web-02", "web-03", "web-04"}
    s = load_settings(AIOPS_DATA_DIR=tmp_path)  # MAX_GROUP_FRACTION 0.5
    assert blast_radius([restart("web-01"), restart("web-02")], s, groups) is None
    problem = blast_radius([restart("web-01"), restart("web-02"), restart("web-03")], s, groups)
    assert problem and "3 of the 4 hosts of group web" in problem
    assert blast_radius([restart("db-01")], s, groups) is None  # one host of a group is always allowed
