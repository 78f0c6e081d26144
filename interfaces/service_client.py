"""The CLI's way through a running service (when `aiops serve` owns the data dir).

Same commands, same output: `aiops approve` posts to `/api/v1/plans/{id}/approve` with the service's
local token and `X-Aiops-Approver: <--by>`, so the service applies exactly the gate the CLI would
(APPROVERS, channel `cli`). Errors come back as the API's one-line `detail`.
"""

from __future__ import annotations

from typing import Any

import httpx

from service.discovery import ServiceInfo


class ServiceError(RuntimeError):
    """The service refused or could not be reached: one line for the user."""


class ServiceClient:
    def __init__(self, info: ServiceInfo, timeout: float = 600.0) -> None:
        self.info = info
        self._client = httpx.Client(base_url=info.url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {info.token}"})

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, approver: str | None = None, **kwargs: Any) -> Any:
        headers = {"X-Aiops-Approver": approver} if approver else {}
        try:
            resp = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(f"the aiops service at {self.info.url} (pid {self.info.pid}) did not answer: "
                               f"{type(exc).__name__}") from None
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text[:200]
            raise ServiceError(f"{detail} (service HTTP {resp.status_code})")
        return resp.json()

    def incidents(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return list(self.request("GET", "/api/v1/incidents", params=params)["incidents"])

    def report(self, incident_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/incidents/{incident_id}"))

    def decide(self, plan_id: str, decision: str, *, approver: str, plan_hash: str | None, comment: str) -> dict[str, Any]:
        if not plan_hash:  # the CLI's default: the hash the plan has now (shown when it paused)
            plan_hash = self.request("GET", f"/api/v1/plans/{plan_id}")["plan_hash"]
        return dict(self.request("POST", f"/api/v1/plans/{plan_id}/{decision}", approver=approver,
                                 json={"plan_hash": plan_hash, "comment": comment}))

    def change(self, incident_id: str, operation: str, *, approver: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """An on-call operation (ack, assign, comments, snooze, close) as `approver` on the cli channel."""
        return dict(self.request("POST", f"/api/v1/incidents/{incident_id}/{operation}", approver=approver,
                                 **({"json": body} if body is not None else {})))

    def analyze(self, webhook: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api/v1/local/analyze", json={"webhook": webhook, "source": source}))
