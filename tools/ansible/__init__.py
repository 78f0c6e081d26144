"""The Ansible toolset: catalog playbooks run through ansible-runner, behind their safety walls.

`runner` runs a playbook (unsafe extra vars, inventory-only targets, guarded child process), `lint`
holds the module allow-list, `inventory` says which hosts and groups exist, `guard` makes
ansible-playbook die with its parent, and `playbooks/` ships the only playbooks that ever run.
"""

from tools.ansible.inventory import Inventory, InventoryError, inventory_hosts, is_controller, load_inventory
from tools.ansible.lint import ALLOWED_MODULES, PlaybookRejected, lint_playbook
from tools.ansible.runner import PLAYBOOK_DIR, AnsibleTool, HostNotInInventory, PlaybookRun, unsafe_vars_yaml

__all__ = ["ALLOWED_MODULES", "PLAYBOOK_DIR", "AnsibleTool", "HostNotInInventory", "Inventory", "InventoryError",
           "PlaybookRejected", "PlaybookRun", "inventory_hosts", "is_controller", "lint_playbook", "load_inventory",
           "unsafe_vars_yaml"]
