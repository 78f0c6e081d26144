"""Ansible module `aiops_remove_files`: delete a list of regular files in ONE module call.

`ansible.builtin.file: state=absent` takes one path, so a loop over N files costs N module runs: N
Python start-ups on the target (each unpacking and compiling Ansible's module code, ~0.15 s of CPU)
and, over SSH, N round trips. The catalog playbooks delete the files an `ansible.builtin.find` in the
same play just listed (rotated logs, archived journal files); this deletes all of them at once.

Every path is checked before anything is deleted, and none is deleted if one fails a check:
- absolute, and its directory (symlinks resolved) is `under` or below it;
- still a regular file (never followed: a symlink or a directory found in its place is refused; the
  `file` module would have removed the link, or the whole directory tree).
A path that no longer exists is nothing to do (as with `state=absent`). In check mode nothing is
deleted and the result says what would be. `diff` has one entry per file, as the `file` module
reports it (`state: file` -> `state: absent`).

Catalog playbooks only (tools/ansible/lint.py): generated playbooks cannot name it, and they run from
their own directory, which has no `library/`.
"""

from __future__ import annotations

import os
import stat

from ansible.module_utils.basic import AnsibleModule


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "str", "required": True},
                       "under": {"type": "str", "required": True}},
        supports_check_mode=True,
    )
    under = os.path.realpath(module.params["under"])
    doomed: list[str] = []
    for path in module.params["paths"]:
        if not os.path.isabs(path):
            module.fail_json(msg=f"aiops: refused: {path} is not an absolute path")
        if not _inside(os.path.realpath(os.path.dirname(path)), under):
            module.fail_json(msg=f"aiops: refused: {path} is not under {under}")
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            module.fail_json(msg=f"aiops: refused: {path} is no longer a regular file")
        doomed.append(path)
    if not module.check_mode:
        for path in doomed:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                module.fail_json(msg=f"aiops: could not delete {path}: {exc}", removed=doomed[:doomed.index(path)])
    module.exit_json(changed=bool(doomed), removed=doomed,
                     diff=[{"before": {"path": p, "state": "file"}, "after": {"path": p, "state": "absent"}}
                           for p in doomed])


if __name__ == "__main__":
    main()
