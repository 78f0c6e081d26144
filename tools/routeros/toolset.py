"""The MikroTik RouterOS toolset: one router, through its API service.

Settings `MIKROTIK_*` (`settings.py`); client `client.py`; read tools `tools.py`; evidence
`evidence.py` (the interface, the router's log over the flap window, the routes it carries and the
other paths for them, one item at a time); execution `actions.py` (management path never cut; a
risky change schedules its own revert on the router first); verification `verify.py` (read back;
the revert job is removed only when the change verified: `settle`). Where each action fits:

- an interface flapping (its "link down" lines in the router's log over the window) whose routes
  have another path that is up: disable it, with the self-revert timer (always a human);
  with no other path it is never proposed (that would be an outage);
- an interface disabled with no "changed by" line about it in the log: enable it (a policy may
  allow that without a human); one a person disabled is never enabled by the loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from core.models import Action, Evidence, ExecutionResult, Risk, VerificationCheck
from core.subject import host_names
from tools.catalog_entry import AutoBounds, CatalogEntry
from tools.fit import EvidenceNeed, Fit, Never
from tools.params import Param
from tools.result import UNREAD, Observation
from tools.routeros import actions
from tools.routeros.client import INTERFACE_NAME, RouterOSClient
from tools.routeros.evidence import interface_from_labels, investigate
from tools.routeros.settings import RouterOSSettings
from tools.routeros.tools import make_routeros_tools
from tools.routeros.verify import checks, confirm
from tools.toolset import Candidate, Outcome, PlanContext, ReadContext, Reading, Toolset, bound

_HOST_NICS = Never(name="host network cards", domains=["host", "kubernetes", "container", "cloud"])


def entries() -> list[CatalogEntry]:
    iface = {"interface": Param(description="RouterOS interface name (letters, digits, - _ . /)",
                                pattern=INTERFACE_NAME.pattern[1:-1], max_length=63, names="interface")}
    route = {"route": Param(description="RouterOS route id, e.g. *1A (from the route evidence)",
                            pattern=r"\*[0-9A-Fa-f]{1,8}", allow="*", names="route")}
    return [
        CatalogEntry(
            name="routeros_interface_disable", kind="routeros_interface", risk=Risk.HIGH, parameters=iface,
            target_kind="router", inverse="routeros_interface_enable",
            description="Administratively disable a flapping RouterOS interface so traffic fails over (refused on "
                        "the management path; reverts itself unless verified)",
            verification="no more link up/down events; traffic flows on the backup path",
            fit=Fit(categories=["network"], domains=["network", "other"],
                    alert_kind=r"flap|carrier|link (up|down) (changes|events)",
                    alert_kind_description="a link-flapping alert",
                    requires=[EvidenceNeed(name="link flapping", signals=["metric", "state", "log"],
                                           about=["interface"],
                                           description="link down/up events of that interface over the flap window "
                                                       "(the router's log, or a carrier-changes series)",
                                           pattern=r"flapping|carrier|link.?(down|up|flap)"),
                              EvidenceNeed(name="another path", signals=["state"], about=["interface"],
                                           anomalous=False,
                                           description="another route that is up for the destinations it carries",
                                           pattern=r"backup path available")],
                    forbid=[EvidenceNeed(name="the only path for a destination", signals=["state"],
                                         about=["interface"], anomalous=False, description="no other path",
                                         pattern=r"no other path for")],
                    # Without the router's own readings (a replay, a router that could not be read) the
                    # flap alert is reason enough to put it before a human; "no other path" never is.
                    never=[_HOST_NICS], always_human=True, suggest_without_evidence=["network"])),
        CatalogEntry(
            name="routeros_interface_enable", kind="routeros_interface", risk=Risk.MEDIUM, parameters=iface,
            target_kind="router", inverse="routeros_interface_disable",
            description="Enable a disabled RouterOS interface again",
            verification="the interface is running and its link stays up",
            bounds=AutoBounds(note="none beyond the fit: only an interface nobody disabled on purpose"),
            fit=Fit(categories=["network", "availability"], domains=["network", "other"],
                    requires=[EvidenceNeed(name="disabled by no one", signals=["log"], about=["interface"],
                                           description="the interface is disabled and the router's log shows no "
                                                       "change of it by anyone",
                                           pattern=r"is disabled and no one changed it")],
                    forbid=[EvidenceNeed(name="an interface a person disabled", signals=["log"], anomalous=False,
                                         about=["interface"], description="disabled by a person",
                                         pattern=r"was disabled by a person")],
                    never=[_HOST_NICS])),
        CatalogEntry(
            name="routeros_route_disable", kind="routeros_route", risk=Risk.HIGH, parameters=route,
            target_kind="router", inverse="routeros_route_enable",
            description="Disable a static RouterOS route so another route takes over (refused for the route to us; "
                        "reverts itself unless verified)",
            verification="the route is disabled and another route for its destination is active", fit=Fit()),
        CatalogEntry(
            name="routeros_route_enable", kind="routeros_route", risk=Risk.MEDIUM, parameters=route,
            target_kind="router", inverse="routeros_route_disable",
            description="Enable a disabled static RouterOS route again", verification="the route is active",
            fit=Fit()),
    ]


class RouterOSToolset(Toolset):
    name = "routeros"
    folder = Path(__file__).parent
    settings_model = RouterOSSettings

    def entries(self) -> list[CatalogEntry]:
        return entries()

    def _entry(self, name: str) -> CatalogEntry:
        return next(e for e in self.entries() if e.name == name)

    def connect(self, settings: Any) -> RouterOSClient | None:
        return RouterOSClient.from_settings(self.settings(settings))

    def read_tools(self, client: RouterOSClient, *, now: Any = None, call_graph: Any = None) -> list[Any]:
        return make_routeros_tools(client)

    def names(self, labels: dict[str, str]) -> dict[str, set[str]]:
        """An interface the labels name, and the device that reports it (the router, for snmp_exporter
        and hand-written router rules alike: its host / instance label)."""
        name = interface_from_labels(labels)
        if not name:
            return {}
        return {"interface": {name}, "router": host_names(labels)}

    async def investigate(self, client: RouterOSClient, ctx: ReadContext) -> Reading:
        if interface_from_labels(ctx.labels) is None:
            return Reading()
        ros = await investigate(client, ctx.labels)
        obs = list(ros.observations)
        if ros.error:
            obs.insert(0, Observation(tool="routeros", query="/login", component=ros.interface or ctx.target,
                                      signal="state", anomalous=False, about={"interface": ros.interface or ""},
                                      excerpt=f"{UNREAD} RouterOS (no API session): {ros.error}"[:400]))
        return Reading(observations=obs)

    # ------------------------------------------------------------------------------ binding --
    def candidates(self, ctx: PlanContext) -> list[Candidate]:
        """The interface the alert names on the router: the one router readings identify, else the host
        the alert names."""
        out: list[Candidate] = []
        routers = sorted(ctx.objects.observed.get("router", {})) or sorted(ctx.objects.named.get("router", set()))
        interfaces = sorted(ctx.objects.named.get("interface", set()))
        for router in routers[:1]:
            for name in interfaces:
                out += bound(self._entry("routeros_interface_disable"), router, {"interface": name},
                             f"{name} on {router} is flapping; disabling it lets traffic settle on the other path "
                             "until the link is fixed (a revert timer undoes it unless verified)")
                out += bound(self._entry("routeros_interface_enable"), router, {"interface": name},
                             f"{name} on {router} is disabled and nobody disabled it on purpose; enabling it "
                             "restores the link")
        return out

    # ---------------------------------------------------------------------------- execution --
    def preflight(self, action: Action, client: RouterOSClient | None) -> str:
        return actions.preflight(action, client)

    def execute(self, action: Action, client: RouterOSClient | None, *, plan_id: str = "") -> Outcome:
        return actions.execute(action, client, plan_id=plan_id)

    async def verify(self, client: RouterOSClient | None, evidence: list[Evidence], executions: list[ExecutionResult],
                     component: str) -> list[VerificationCheck]:
        """Read every RouterOS change back (state, flaps since the change, where traffic goes now)."""
        if client is None:
            return []

        cited = next((e.id for e in evidence if e.tool == "routeros" and e.anomalous), "")
        return await asyncio.to_thread(checks, client, executions, cited)

    def settle(self, client: RouterOSClient | None, executions: list[ExecutionResult], recovered: bool) -> str:
        """Remove the revert jobs of verified changes; leave them armed otherwise."""
        if client is None:
            return ""

        return confirm(client, executions, recovered)


TOOLSET = RouterOSToolset()
