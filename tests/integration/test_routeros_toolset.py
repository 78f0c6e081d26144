"""The RouterOS toolset with the real librouteros client against the RouterOS API simulator over TCP:
login (and a wrong password), `!trap` and `!fatal`, queries and tags on the wire, the router's view
of an interface as evidence, and the safe actions: management-path refusal, a self-revert scheduled
before the change, removed only when verification succeeds (and firing it undoes the change)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from core.models import Action, ExecutionResult
from tests.sim.routeros import RouterOSSim, encode_sentence, read_sentence
from tools.catalog import CATALOG
from tools.params import ParameterRefused
from tools.routeros import actions
from tools.routeros.client import RouterOSAuthError, RouterOSClient, RouterOSConfig, RouterOSError
from tools.routeros.evidence import interface_from_labels, investigate
from tools.routeros.tools import make_routeros_tools
from tools.routeros.verify import checks, confirm


@pytest.fixture
def rtr():
    with RouterOSSim() as sim:
        yield sim


def client_for(sim: RouterOSSim, password: str = "s3cret!") -> RouterOSClient:
    return RouterOSClient(RouterOSConfig(host="127.0.0.1", port=sim.port, user="aiops", password=password, timeout=5,
                                         revert_seconds=300))


def act(name: str, target: str = "rtr-edge-01", **params):
    try:
        return CATALOG[name].action(target, **params)
    except ParameterRefused:  # the catalog's wall; build it raw to test the toolset's own checks behind it
        e = CATALOG[name]
        return Action(kind=e.kind, name=name, target=target, parameters=params, risk=e.risk, verification=e.verification)


def result(out: actions.Outcome, name: str) -> ExecutionResult:
    return ExecutionResult(action=name, target="rtr-edge-01", status=out.status, output=out.output, details=out.details)


def test_login_and_wrong_password(rtr):
    with client_for(rtr).session() as s:
        assert s.identity() == "rtr-edge-01"
    assert ["/login", "=name=aiops", "=password=s3cret!"] in rtr.commands
    with pytest.raises(RouterOSAuthError, match=r"invalid user name or password \(6\).*MIKROTIK_PASSWORD"):
        with client_for(rtr, password="wrong").session():
            pass


def test_trap_on_a_bad_command_and_the_session_goes_on(rtr):
    with client_for(rtr).session() as s:
        with pytest.raises(RouterOSError, match="router said: no such command prefix"):
            s.call("/ip/frobnicate/print")
        with pytest.raises(RouterOSError, match="router said: no such item"):
            s.set_interface_disabled("*99", True)
        assert s.resource()["board-name"] == "RB5009UG+S+"  # a !trap is not fatal


def test_wire_protocol_details(rtr):
    """Raw sentences: !fatal before login, tags echoed on every reply, queries, long words."""
    with socket.create_connection(("127.0.0.1", rtr.port), timeout=5) as sock:
        sock.sendall(encode_sentence(["/interface/print"]))
        assert read_sentence(sock) == ["!fatal", "not logged in"]
    with socket.create_connection(("127.0.0.1", rtr.port), timeout=5) as sock:
        sock.sendall(encode_sentence(["/login", "=name=aiops", "=password=s3cret!", ".tag=1"]))
        assert read_sentence(sock) == ["!done", ".tag=1"]
        sock.sendall(encode_sentence(["/interface/print", "?type=ether", "?running=true", "?#&",
                                      "=.proplist=name,running", ".tag=7"]))
        rows = []
        while (s := read_sentence(sock))[0] == "!re":
            assert s[-1] == ".tag=7"
            rows.append(s)
        assert s == ["!done", ".tag=7"] and len(rows) == 5 and rows[0][:2] == ["!re", "=name=ether1-isp-a"]
        comment = "x" * 300  # a two-byte length prefix
        sock.sendall(encode_sentence(["/interface/set", "=.id=*4", f"=comment={comment}"]))
        assert read_sentence(sock) == ["!done"]
        assert rtr.router.iface("ether4").comment == comment
        sock.sendall(encode_sentence(["/ip/route/set", "=.id=*A", "=disabled=yes"]))
        assert read_sentence(sock)[:2] == ["!trap", "=category=1"] and read_sentence(sock) == ["!done"]
        sock.sendall(encode_sentence(["/quit"]))
        assert read_sentence(sock) == ["!fatal", "session terminated on request"]


def test_pre_643_challenge_login_also_works(rtr):
    import librouteros
    from librouteros.login import token

    api = librouteros.connect("127.0.0.1", "aiops", "s3cret!", port=rtr.port, login_method=token, timeout=5)
    try:
        assert list(api("/system/identity/print")) == [{"name": "rtr-edge-01"}]
    finally:
        api.close()


def test_evidence_for_a_flapping_uplink(rtr):
    """The flaps are in the router's log over the window (a counter read twice milliseconds apart shows
    nothing: issue 17), and the default route it carries has another path that is up."""
    labels = {"alertname": "RouterInterfaceFlapping", "host": "rtr-edge-01", "interface": "ether1-isp-a"}
    found = asyncio.run(investigate(client_for(rtr), labels))
    assert found.interface == "ether1-isp-a" and not found.error
    iface = found.observations[0]
    assert "link-downs 57 since boot" in iface.excerpt and iface.component == "ether1-isp-a"
    assert iface.about == {"interface": "ether1-isp-a", "router": "rtr-edge-01"}
    log = next(o for o in found.observations if o.signal == "log")
    assert log.anomalous and log.excerpt.startswith("ether1-isp-a flapping: 20 'link down' in the router's log in "
                                                    "the last 10 min")
    route = next(o for o in found.observations if "route *1" in o.excerpt)
    assert "0.0.0.0/0 via 203.0.113.1" in route.excerpt
    assert "backup path available: route *2 via 198.51.100.1 (ether2-isp-b, up)" in route.excerpt
    assert any("firewall input drop" in o.excerpt for o in found.observations)
    assert any(o.query == "/system/resource/print" for o in found.observations)
    # snmp_exporter's IF-MIB labels name the interface too; junk does not pass as a name
    assert interface_from_labels({"ifDescr": "ether2-isp-b"}) == "ether2-isp-b"
    assert interface_from_labels({"ifName": 'x"];/system reset'}) is None


def test_one_unreadable_path_is_one_item_the_rest_stay(rtr):
    """A user whose policy cannot read the log: one "could not read the router's log" item, and the
    interface, routes, neighbours and resources are still read (issue 17: it used to lose them all)."""
    rtr.router.denied = {"log"}
    labels = {"alertname": "RouterInterfaceFlapping", "host": "rtr-edge-01", "interface": "ether1-isp-a"}
    found = asyncio.run(investigate(client_for(rtr), labels))
    assert not found.error
    unread = [o for o in found.observations if o.excerpt.startswith("could not read")]
    assert [o.excerpt for o in unread] == ["could not read the router's log: routeros 127.0.0.1:"
                                           f"{rtr.port}: /log/print: router said: not enough permissions (9)"]
    assert any("route *1" in o.excerpt for o in found.observations)
    assert any(o.query == "/system/resource/print" for o in found.observations)
    assert not any(o.signal == "log" for o in found.observations)


def test_a_person_disabling_an_interface_is_in_the_log(rtr):
    rtr.router.iface("ether2-isp-b").disabled = True
    rtr.router.changed_by("ether2-isp-b", "alice", True)
    rtr.router.iface("ether4").disabled = True  # nobody's change on record
    by_alice = asyncio.run(investigate(client_for(rtr), {"interface": "ether2-isp-b"}))
    assert any(o.excerpt.startswith("ether2-isp-b was disabled by a person: changed by alice")
               for o in by_alice.observations)
    nobody = asyncio.run(investigate(client_for(rtr), {"interface": "ether4"}))
    assert any(o.anomalous and o.excerpt.startswith("ether4 is disabled and no one changed it")
               for o in nobody.observations)


def test_disable_schedules_a_revert_and_verification_removes_it(rtr):
    c = client_for(rtr)
    out = actions.execute(act("routeros_interface_disable", interface="ether1-isp-a"), c, plan_id="plan-x")
    assert out.status == "ok", out.output
    job = str(out.details["revert_job"])
    sched = next(j for j in rtr.router.scheduler if j["name"] == job)
    assert sched["on-event"] == f'/interface enable *1; /system scheduler remove [find name="{job}"]'
    assert sched["interval"] == "300s"
    # the revert was in place before the change was made
    sent = [w[0] for w in rtr.commands]
    assert sent.index("/system/scheduler/add") < sent.index("/interface/set")
    assert rtr.router.iface("ether1-isp-a").disabled
    ex = [result(out, "routeros_interface_disable")]
    got = checks(c, ex, "ev-2")
    assert [k.recovered for k in got] == [True], got
    assert "routed elsewhere" in got[0].note
    assert "removed" in confirm(c, ex, recovered=True)
    assert rtr.router.scheduler == [] and rtr.router.iface("ether1-isp-a").disabled


def test_unverified_change_keeps_its_revert_which_undoes_it(rtr):
    c = client_for(rtr)
    out = actions.execute(act("routeros_route_disable", route="*1"), c)
    assert out.status == "ok" and "revert job" in out.output
    assert "left armed" in confirm(c, [result(out, "routeros_route_disable")], recovered=False)
    job = str(out.details["revert_job"])
    assert [j["name"] for j in rtr.router.scheduler] == [job]
    rtr.fire(job)  # the router's timer elapses
    assert not rtr.router.routes[0].disabled and rtr.router.scheduler == []


@pytest.mark.parametrize("name, params, why", [
    ("routeros_interface_disable", {"interface": "ether5-mgmt"}, "carries our management path"),
    ("routeros_interface_disable", {"interface": "bridge-lan"}, "carries our management path"),
    ("routeros_interface_disable", {"interface": "ether3"}, "carries our management path"),  # a port of that bridge
    ("routeros_route_disable", {"route": "*4"}, "how the router answers our API connection"),
    ("routeros_route_disable", {"route": "*D"}, "is dynamic"),
    ("routeros_interface_disable", {"interface": "ether9"}, "no interface named ether9"),
    ("routeros_interface_disable", {"interface": 'e1"];/system reset'}, "invalid interface name"),
    ("routeros_route_disable", {"route": "0.0.0.0/0"}, "invalid RouterOS item id"),
])
def test_refusals_change_nothing(rtr, name, params, why):
    before = [(i.name, i.disabled) for i in rtr.router.ifaces], [(r.id, r.disabled) for r in rtr.router.routes]
    out = actions.execute(act(name, **params), client_for(rtr))
    assert out.status == "failed" and why in out.output, out.output
    assert rtr.router.scheduler == []
    assert ([(i.name, i.disabled) for i in rtr.router.ifaces], [(r.id, r.disabled) for r in rtr.router.routes]) == before
    assert why in actions.preflight(act(name, **params), client_for(rtr))


def test_wrong_router_and_enable_and_noop(rtr):
    c = client_for(rtr)
    wrong = actions.execute(act("routeros_interface_disable", target="rtr-core-02", interface="ether2-isp-b"), c)
    assert wrong.status == "failed" and "configured router is 'rtr-edge-01'" in wrong.output
    assert actions.execute(act("routeros_interface_enable", interface="ether2-isp-b"), c).status == "skipped"
    rtr.router.iface("ether4").disabled = True
    on = actions.execute(act("routeros_interface_enable", interface="ether4"), c)
    assert on.status == "ok" and "revert_job" not in on.details and not rtr.router.iface("ether4").disabled
    assert [k.recovered for k in checks(c, [result(on, "routeros_interface_enable")])] == [True]


def test_wrong_password_is_a_failed_step_not_a_crash(rtr):
    out = actions.execute(act("routeros_interface_disable", interface="ether1-isp-a"), client_for(rtr, "nope"))
    assert out.status == "failed" and "login as 'aiops' refused" in out.output
    assert not rtr.router.iface("ether1-isp-a").disabled


def test_llm_tools(rtr):
    tools = {t.name: t for t in make_routeros_tools(client_for(rtr))}
    rows = json.loads(asyncio.run(tools["ros_interfaces"].ainvoke({"name": "ether1-isp-a"})))
    assert rows["status"] == "ok" and rows["data"][0]["link-downs"] > 0
    log = json.loads(asyncio.run(tools["ros_log"].ainvoke({"contains": "ether1-isp-a", "limit": 5})))
    assert len(log["data"]) == 5 and all("ether1-isp-a" in r["message"] for r in log["data"])
    routes = json.loads(asyncio.run(tools["ros_routes"].ainvoke({})))
    assert any(r["dst-address"] == "0.0.0.0/0" and r["active"] for r in routes["data"])
    denied = {t.name: t for t in make_routeros_tools(client_for(rtr, "nope"))}
    err = json.loads(asyncio.run(denied["ros_resource"].ainvoke({})))
    assert err["status"] == "error" and "refused" in err["error"]
