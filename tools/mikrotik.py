"""MikroTik RouterOS tool (librouteros API protocol). Interface operations used by the catalog."""

from __future__ import annotations

from typing import Any

from core.settings import Settings

INTERFACE_OPS = ("enable", "disable")


class RouterOSNotConfigured(RuntimeError):
    pass


class MikrotikTool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.MIKROTIK_HOST and s.MIKROTIK_USER)

    def _connect(self) -> Any:
        if not self.configured:
            raise RouterOSNotConfigured("MIKROTIK_HOST / MIKROTIK_USER not set")
        from librouteros import connect

        s = self.settings
        return connect(host=s.MIKROTIK_HOST, username=s.MIKROTIK_USER, password=s.MIKROTIK_PASSWORD or "",
                       port=s.MIKROTIK_PORT, timeout=15)

    def describe(self, interface: str, operation: str) -> str:
        return f"/interface set [find name={interface}] disabled={'yes' if operation == 'disable' else 'no'}"

    def interfaces(self) -> list[dict[str, Any]]:
        api = self._connect()
        try:
            return [dict(row) for row in api.path("interface")]
        finally:
            api.close()

    def set_interface(self, interface: str, operation: str) -> str:
        if operation not in INTERFACE_OPS:
            raise ValueError(f"unsupported interface operation {operation!r}")
        api = self._connect()
        try:
            path = api.path("interface")
            ids = [row[".id"] for row in path if row.get("name") == interface]
            if not ids:
                raise ValueError(f"no interface named {interface!r} on {self.settings.MIKROTIK_HOST}")
            path.update(**{".id": ids[0], "disabled": operation == "disable"})
            return f"interface {interface} {operation}d"
        finally:
            api.close()
