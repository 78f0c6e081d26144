import pytest

from tools.ansible import PLAYBOOK_DIR, PlaybookRejected, inventory_hosts, lint_playbook
from tools.catalog import CATALOG


@pytest.mark.parametrize("entry", [e for e in CATALOG.values() if e.playbook], ids=lambda e: e.name)
def test_catalog_playbooks_use_only_allow_listed_modules(entry):
    assert lint_playbook(PLAYBOOK_DIR / entry.playbook)


def test_lint_rejects_shell_and_unknown_modules(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("- hosts: all\n  tasks:\n    - name: nope\n      ansible.builtin.shell: rm -rf /tmp/x\n")
    with pytest.raises(PlaybookRejected, match="not allow-listed"):
        lint_playbook(bad)


def test_inventory_hosts_ini_and_yaml(tmp_path):
    ini = tmp_path / "hosts.ini"
    ini.write_text("[web]\nweb-01 ansible_host=10.0.0.5\n# comment\nweb-02\n")
    assert inventory_hosts(str(ini)) == {"web-01", "web-02"}  # no implicit localhost
    yml = tmp_path / "hosts.yml"
    yml.write_text("all:\n  children:\n    db:\n      hosts:\n        db-01: {}\n")
    assert "db-01" in inventory_hosts(str(yml))
