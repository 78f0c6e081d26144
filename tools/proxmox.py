"""Proxmox VE tool (proxmoxer). Guest operations used by the catalog; more comes with its own issue."""

from __future__ import annotations

from typing import Any

from core.settings import Settings

GUEST_OPS = ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")


class ProxmoxNotConfigured(RuntimeError):
    pass


class ProxmoxTool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.PROXMOX_HOST and s.PROXMOX_TOKEN_NAME and s.PROXMOX_TOKEN_VALUE)

    def _api(self) -> Any:
        if not self.configured:
            raise ProxmoxNotConfigured("PROXMOX_HOST / PROXMOX_TOKEN_NAME / PROXMOX_TOKEN_VALUE not set")
        from proxmoxer import ProxmoxAPI

        s = self.settings
        return ProxmoxAPI(s.PROXMOX_HOST, user=s.PROXMOX_USER, token_name=s.PROXMOX_TOKEN_NAME,
                          token_value=s.PROXMOX_TOKEN_VALUE, verify_ssl=s.PROXMOX_VERIFY_SSL, timeout=30)

    def describe(self, node: str, vmid: str | int, operation: str) -> str:
        return f"POST /api2/json/nodes/{node}/qemu/{vmid}/status/{operation}"

    def guest_status(self, node: str, vmid: str | int) -> dict[str, Any]:
        return dict(self._api().nodes(node).qemu(vmid).status.current.get())

    def guest_op(self, node: str, vmid: str | int, operation: str) -> str:
        if operation not in GUEST_OPS:
            raise ValueError(f"unsupported guest operation {operation!r}")
        upid = getattr(self._api().nodes(node).qemu(vmid).status, operation).post()
        return str(upid)
