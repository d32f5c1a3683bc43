"""The tenancy matrix: every API route and method × every kind of caller, answers from one table.

The table is `tests/api/tenancy_matrix.yaml` (its header explains the format). One app on a real
Postgres, the local Kubernetes API server and the embedded ClickHouse serves the whole matrix;
two teams (red, blue) each have an owner, a member and an automation account's API key, plus an
admin user, the admin and user service keys, an ingest key, a user in no team and an anonymous
caller. `test_every_route_is_in_the_table` fails, naming the rows to add, when the app's OpenAPI
document has a route+method the table lacks.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api import agent_tokens
from functions.api.app import create_app
from functions.api.policy_sync import sync_server_policy
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.kube.errors import NotFound
from mcp_sentinel.kube.resources import CustomResources, SentinelKube
from mcp_sentinel.policy_delivery import read_policy_configmap
from mcp_sentinel.storage.events import EventRecord, EventWriter
from tests.fixtures.kube import LocalKube
from tests.helpers.api import ADMIN_KEY, INGEST_KEY, USER_SERVICE_KEY, Api, AppFactory, base_settings

TABLE = Path(__file__).with_name("tenancy_matrix.yaml")
USER_LABEL = "platform.mcpruntime.org/user-id"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


# ----------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    """One request of the matrix and what each caller must get."""

    route: str
    request: str
    body: Any
    headers: dict[str, str]
    expect: dict[str, int]
    ghost: tuple[str, str] | None
    ghost_expect: dict[str, int]
    conceal: dict[str, list[str]]
    reveal: dict[str, list[str]]

    @property
    def label(self) -> str:
        return self.request if self.request == self.route else f"{self.request} [{self.route}]"


@dataclass(frozen=True)
class Table:
    """The parsed table."""

    callers: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    rows: tuple[Row, ...]


def _spread(raw: dict[str, Any], callers: tuple[str, ...], groups: dict[str, tuple[str, ...]], where: str,
            *, complete: bool) -> dict[str, Any]:
    """Caller -> value from a mapping of `all`, groups and callers (the more specific wins)."""
    out: dict[str, Any] = {}
    if "all" in raw:
        out = dict.fromkeys(callers, raw["all"])
    by_group: dict[str, tuple[str, Any]] = {}
    for key, value in raw.items():
        if key == "all" or key in callers:
            continue
        if key not in groups:
            raise ValueError(f"{where}: unknown caller or group {key!r}")
        for c in groups[key]:
            if c in by_group and by_group[c][1] != value and c not in raw:
                raise ValueError(f"{where}: groups {by_group[c][0]} and {key} disagree on {c}; name {c} itself")
            by_group[c] = (key, value)
    out.update({c: v for c, (_, v) in by_group.items()})
    out.update({k: v for k, v in raw.items() if k in callers})
    if complete and (missing := [c for c in callers if c not in out]):
        raise ValueError(f"{where}: no expectation for {', '.join(missing)} (add `all:`)")
    return out


def load_table(path: Path = TABLE) -> Table:
    """Parse and check the table (unknown callers, incomplete rows and bad routes are errors)."""
    doc = yaml.safe_load(path.read_text())
    callers = tuple(doc["callers"])
    groups = {name: tuple(members) for name, members in doc["groups"].items()}
    for name, members in groups.items():
        if unknown := set(members) - set(callers):
            raise ValueError(f"group {name}: unknown callers {sorted(unknown)}")
    rows = []
    for i, raw in enumerate(doc["rows"]):
        route = str(raw["route"])
        where = f"row {i} ({route})"
        method, _, _path = route.partition(" ")
        request = str(raw.get("request") or route)
        if request.partition(" ")[0] != method:
            raise ValueError(f"{where}: request method differs from the route's")
        ghost = None
        if raw.get("ghost"):
            old, sep, new = str(raw["ghost"]).partition(" -> ")
            if not sep:
                raise ValueError(f"{where}: ghost must read 'old -> new'")
            ghost = (old.strip(), new.strip())
        rows.append(Row(
            route=route, request=request, body=raw.get("body"), headers=dict(raw.get("headers") or {}),
            expect=_spread(raw["expect"], callers, groups, where, complete=True),
            ghost=ghost,
            ghost_expect=_spread(raw.get("ghost_expect") or {}, callers, groups, where, complete=False),
            conceal=_spread(raw.get("conceal") or {}, callers, groups, where, complete=False),
            reveal=_spread(raw.get("reveal") or {}, callers, groups, where, complete=False),
        ))  # fmt: skip
    return Table(callers, groups, tuple(rows))


def openapi_routes() -> set[str]:
    """`METHOD /path` for every operation of the app's OpenAPI document."""
    doc = create_app(base_settings()).openapi()
    return {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}


def test_every_route_is_in_the_table() -> None:
    table = load_table()
    covered = {r.route for r in table.rows}
    app_routes = openapi_routes()
    missing = sorted(app_routes - covered, key=lambda r: (r.split(" ")[1], r))
    stale = sorted(covered - app_routes)
    assert not missing, (
        f"{len(missing)} route(s) of the OpenAPI document have no row in {TABLE.name}; add one per route:\n"
        + "\n".join(f"  - route: {r}\n    expect: {{all: ???}}" for r in missing)
    )
    assert not stale, f"rows name routes the app does not serve: {stale}"


def test_the_table_reader_refuses_ambiguous_rows(tmp_path: Path) -> None:
    base = {"callers": ["a", "b"], "groups": {"g": ["a"], "h": ["a", "b"]}}
    for rows, message in (
        ([{"route": "GET /x", "expect": {"a": 200}}], "no expectation for b"),
        ([{"route": "GET /x", "expect": {"all": 200, "zz": 1}}], "unknown caller or group"),
        ([{"route": "GET /x", "expect": {"g": 200, "h": 403}}], "disagree on a"),
        ([{"route": "GET /x", "request": "POST /x", "expect": {"all": 200}}], "request method"),
        ([{"route": "GET /x", "ghost": "a b", "expect": {"all": 200}}], "ghost must read"),
    ):
        path = tmp_path / "t.yaml"
        path.write_text(yaml.safe_dump({**base, "rows": rows}))
        with pytest.raises(ValueError, match=message):
            load_table(path)


# ------------------------------------------------------------------------------------------ the world


SERVER_SPEC = {"image": "x/srv:1", "tools": [{"name": "t", "sideEffect": "read"}], "gateway": {"enabled": True}}


@dataclass
class World:
    """The two teams, their callers and objects, and factories for per-request victims."""

    api: Api
    kube: SentinelKube
    names: dict[str, str]
    headers: dict[str, dict[str, str]]
    baseline: list[tuple[CustomResources, str, dict[str, Any]]] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))
    prefix: str = field(default_factory=lambda: secrets.token_hex(2))

    def uniq(self) -> str:
        return f"m{self.prefix}x{next(self.counter)}"

    async def restore(self, touched: set[str] | None = None) -> None:
        """Put the fixed objects named in `touched` (all when None) back as the table describes them."""
        synced: set[tuple[str, str]] = set()
        for resources, ns, body in self.baseline:
            name = body["metadata"]["name"]
            if touched is not None and name not in touched:
                continue
            try:
                current = resources.get(ns, name)
            except NotFound:
                resources.create(ns, body)
            else:
                labels = (current.get("metadata") or {}).get("labels") or {}
                want = body["metadata"].get("labels") or {}
                if current.get("spec") == body["spec"] and {k: v for k, v in labels.items() if k != "app"} == want:
                    continue
                meta = {**current["metadata"], "labels": want}
                resources.replace(ns, name, {**current, "metadata": meta, "spec": body["spec"]})
            server = body["spec"].get("serverRef", {}).get("name", name)
            synced.add((ns, server))
        if touched is None:
            synced |= {(self.names["red_ns"], "rsrv"), (self.names["blue_ns"], "bsrv")}
        for ns, server in sorted(synced):
            sync_server_policy(self.kube, ns, server)


async def _bearer(api: Api, email: str) -> tuple[dict[str, str], str]:
    body = await api.signup(email)
    return {"Authorization": f"Bearer {body['access_token']}"}, str(body["user"]["id"])


async def build_world(api: Api, kube: SentinelKube) -> World:
    c, store = api.client, api.store
    admin_key = {"x-api-key": ADMIN_KEY}
    tag = secrets.token_hex(3)
    names: dict[str, str] = {}
    headers: dict[str, dict[str, str]] = {
        "anonymous": {}, "ingest": {"x-api-key": INGEST_KEY}, "service": {"x-api-key": USER_SERVICE_KEY},
        "admin_key": admin_key,
    }  # fmt: skip
    r = await c.post("/api/users", headers=admin_key,
                     json={"email": f"admin-{tag}@example.com", "password": "password123", "role": "admin"})
    assert r.status_code == 201, r.text
    login = await c.post("/api/auth/login", json={"email": f"admin-{tag}@example.com", "password": "password123"})
    headers["admin"] = {"Authorization": f"Bearer {login.json()['access_token']}"}
    names["outsider_email"] = f"outsider-{tag}@example.com"
    headers["outsider"], _ = await _bearer(api, names["outsider_email"])
    ids: dict[str, str] = {}
    for color in ("red", "blue"):
        r = await c.post("/api/runtime/teams", headers=admin_key, json={"slug": f"{color}-{tag}"})
        assert r.status_code == 201, r.text
        team = r.json()["team"]
        names |= {f"{color}_team": team["slug"], f"{color}_team_id": team["id"], f"{color}_ns": team["namespace"]}
        for role in ("owner", "member", "bot"):
            h, uid = await _bearer(api, f"{color}-{role}-{tag}@example.com")
            ids[f"{color}_{role}"] = uid
            await store.add_member(team["id"], uid, "owner" if role == "owner" else "member")
            if role == "bot":
                _summary, raw = await store.create_key("api_keys", uid, "automation")
                headers[f"{color}_key"] = {"x-api-key": raw}
            else:
                headers[f"{color}_{role}"] = h
        kube.ensure_namespace(team["namespace"])
    world = World(api=api, kube=kube, names=names, headers=headers)
    world.names["red_member_id"] = ids["red_member"]
    red, blue = names["red_ns"], names["blue_ns"]

    def server(name: str, team: str, creator: str | None = None) -> dict[str, Any]:
        labels = {USER_LABEL: creator} if creator else {}
        return {"metadata": {"name": name, "labels": labels}, "spec": {**SERVER_SPEC, "teamID": team}}

    def access(name: str, server_name: str, ns: str, subject: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": {}},
                "spec": {"serverRef": {"name": server_name, "namespace": ns}, "subject": subject, **extra}}

    red_id, blue_id = names["red_team_id"], names["blue_team_id"]
    world.baseline = [
        (kube.servers, red, server("rsrv", red_id)),
        (kube.servers, red, server("rsrv-m", red_id, ids["red_member"])),
        (kube.servers, blue, server("bsrv", blue_id)),
        (kube.grants, red, access("red-grant", "rsrv", red, {"agentID": "bot", "teamID": red_id},
                                  allowedSideEffects=["read"], policyVersion="v1")),
        (kube.grants, red, access("deleg-grant", "rsrv", red, {"agentID": "helper", "teamID": blue_id},
                                  allowedSideEffects=["read"], policyVersion="v1")),
        (kube.grants, blue, access("blue-grant", "bsrv", blue, {"agentID": "bot", "teamID": blue_id},
                                   allowedSideEffects=["read"], policyVersion="v1")),
        (kube.sessions, red, access("red-sess", "rsrv", red, {"agentID": "bot", "teamID": red_id},
                                    policyVersion="v1", revoked=False)),
        (kube.sessions, blue, access("blue-sess", "bsrv", blue, {"agentID": "bot", "teamID": blue_id},
                                     policyVersion="v1", revoked=False)),
    ]
    await world.restore()
    return world


async def _victim_user(w: World) -> str:
    return str((await w.api.store.create_user(f"{w.uniq()}@example.com", "user", None)).id)


async def _victim_member(w: World) -> str:
    uid = await _victim_user(w)
    await w.api.store.add_member(w.names["red_team_id"], uid, "member")
    return uid


async def _victim_key(w: World) -> str:
    return (await w.api.store.create_key("api_keys", w.names["red_member_id"], "victim"))[0].id


async def _victim_cred(w: World) -> str:
    return (await w.api.store.create_key("registry_credentials", w.names["red_member_id"], "victim"))[0].id


async def _victim_team(w: World) -> str:
    r = await w.api.client.post("/api/runtime/teams", headers={"x-api-key": ADMIN_KEY}, json={"slug": w.uniq()})
    assert r.status_code == 201, r.text
    return str(r.json()["team"]["slug"])


async def _victim_server(w: World) -> str:
    name = w.uniq()
    w.kube.servers.create(w.names["red_ns"], {"metadata": {"name": name}, "spec": SERVER_SPEC})
    return name


async def _uniq(w: World) -> str:
    return w.uniq()


FRESH: dict[str, Callable[[World], Awaitable[str]]] = {
    "uniq": _uniq, "victim_user": _victim_user, "victim_member": _victim_member, "victim_key": _victim_key,
    "victim_cred": _victim_cred, "victim_team": _victim_team, "victim_server": _victim_server,
}  # fmt: skip


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    return value


async def _names_for(w: World, *templates: Any) -> dict[str, str]:
    """The world's names plus a fresh object for each per-request placeholder the templates use."""
    names = dict(w.names)
    used = set(PLACEHOLDER.findall(json.dumps(templates)))
    for key in sorted(used - names.keys()):
        if key not in FRESH:
            raise KeyError(f"unknown placeholder {{{key}}}")
        names[key] = await FRESH[key](w)
    return names


@dataclass(frozen=True)
class Answer:
    status: int
    error: str
    message: str
    text: str


async def _send(w: World, caller: str, request: str, body: Any, headers: dict[str, str]) -> Answer:
    method, _, path = request.partition(" ")
    r: httpx.Response = await w.api.client.request(
        method, path, json=body, headers={**w.headers[caller], **headers}
    )
    error = message = ""
    if r.status_code >= 400:
        try:
            data = r.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or set(data) != {"error", "message"}:
            error = f"<not an envelope: {r.text[:80]}>"
        else:
            error, message = str(data["error"]), str(data["message"])
    return Answer(r.status_code, error, message, r.text)


def _events(red_ns: str) -> list[EventRecord]:
    now = datetime.now(UTC)
    return [
        EventRecord.from_envelope(new_envelope(
            "rsrv-gateway", "mcp.request",
            {"server": "rsrv", "namespace": red_ns, "decision": "allow", "tool_name": "t", "human_id": "alice",
             "agent_id": "bot", "session_id": "sess-alice", "reason": "allowed"},
            timestamp=now - timedelta(minutes=i),
        ))
        for i in range(2)
    ]  # fmt: skip


@pytest.fixture
async def world(
    make_api: AppFactory, kube_cluster: LocalKube, ch_client: Any, ch_database: str, tmp_path: Path
) -> World:
    key = tmp_path / "agent-token.pem"
    key.write_bytes(agent_tokens.generate_pem())
    api = await make_api(
        clickhouse_db=ch_database, active_server_limit=0, push_cooldown_seconds=0,
        agent_token_keys=f"k1={key}", agent_token_issuer="https://sentinel.example.com/api",
        _backends={"kube": kube_cluster.kube, "clickhouse": ch_client},
    )
    w = await build_world(api, kube_cluster.kube)
    EventWriter(ch_client, ch_database).write(_events(w.names["red_ns"]))
    return w


# ------------------------------------------------------------------------------------------ the matrix


def _check(row: Row, caller: str, got: Answer, want: int, names: dict[str, str], what: str) -> list[str]:
    out = []
    if got.status != want:
        out.append(f"{what}: {got.status} != {want} ({got.text[:140]})")
    elif got.error.startswith("<not an envelope"):
        out.append(f"{what}: {got.error}")
    out += [f"{what}: reveals {s!r}" for s in _fill(row.conceal.get(caller, []), names) if s in got.text]
    if 200 <= got.status < 300:
        out += [f"{what}: lacks {s!r}" for s in _fill(row.reveal.get(caller, []), names) if s not in got.text]
    return out


def _touched(request: str, body: Any) -> set[str]:
    """Names a request may change: its path segments and the body's `name`."""
    path = request.partition(" ")[2].split("?", 1)[0]
    names = set(path.split("/"))
    if isinstance(body, dict) and isinstance(body.get("name"), str):
        names.add(body["name"])
    return names


async def _cell(world: World, row: Row, caller: str) -> list[str]:
    """One caller against one row (and the row's ghost): the failures, if any."""
    failures: list[str] = []
    names = await _names_for(world, row.request, row.body, row.headers)
    request, body, headers = (_fill(x, names) for x in (row.request, row.body, row.headers))
    got = await _send(world, caller, request, body, headers)
    failures += _check(row, caller, got, row.expect[caller], names, f"{caller:<11} {row.label}")
    if request.split(" ")[0] != "GET" and 200 <= got.status < 300:
        await world.restore(_touched(request, body))
    if row.ghost is None:
        return failures
    old, new = row.ghost
    swapped = [_swap(x, old, new) for x in (row.request, row.body, row.headers)]
    g_names = await _names_for(world, *swapped)
    g_request, g_body, g_headers = (_fill(x, g_names) for x in swapped)
    ghost = await _send(world, caller, g_request, g_body, g_headers)
    what = f"{caller:<11} {row.label} (no such object)"
    if caller in row.ghost_expect:
        if ghost.status != row.ghost_expect[caller]:
            failures.append(f"{what}: {ghost.status} != {row.ghost_expect[caller]} ({ghost.text[:140]})")
    elif 200 <= got.status < 300:
        if (ghost.status, ghost.error) != (404, "not_found"):
            failures.append(f"{what}: {ghost.status} {ghost.error} != 404 not_found ({ghost.text[:140]})")
    else:
        real_name, ghost_name = _fill(old, names), _fill(new, g_names)
        seen = (ghost.status, ghost.error, ghost.message.replace(ghost_name, real_name))
        if seen != (got.status, got.error, got.message):
            failures.append(
                f"{what}: answers {ghost.status} {ghost.error} {ghost.message[:90]!r}, but for the real "
                f"object {got.status} {got.error} {got.message[:90]!r}: that tells them it exists"
            )
    if g_request.split(" ")[0] != "GET" and 200 <= ghost.status < 300:
        await world.restore(_touched(g_request, g_body))
    return failures


async def test_tenancy_matrix(world: World) -> None:
    table = load_table()
    failures: list[str] = []
    for row in table.rows:
        # Reads, and writes the table says are refused, change nothing: those callers go at once
        # (one app, so this overlaps their I/O). Writes that succeed go one at a time, each from
        # the table's world (restored after it). A refusal that wrongly succeeds fails the test anyway.
        writes = not row.request.startswith("GET ")
        alone = [c for c in table.callers if writes and 200 <= row.expect[c] < 300]
        together = [c for c in table.callers if c not in alone]
        for found in await asyncio.gather(*(_cell(world, row, c) for c in together)):
            failures += found
        for caller in alone:
            failures += await _cell(world, row, caller)
    assert not failures, f"{len(failures)} cell(s) answer wrongly:\n" + "\n".join(failures)


# --------------------------------------------------------------------- findings, one test each


async def test_grant_name_takeover_needs_the_current_server(world: World) -> None:
    """Re-applying an existing grant's name onto a server the caller administers must not move a
    grant off a server it does not administer (the grant stays where it was, its policy unchanged)."""
    red = world.names["red_ns"]
    before = world.kube.grants.get(red, "red-grant")["spec"]
    r = await world.api.client.post("/api/runtime/grants", headers=world.headers["red_member"], json={
        "name": "red-grant", "namespace": red, "serverRef": {"name": "rsrv-m"}, "subject": {"agentID": "bot"},
        "allowedSideEffects": ["read", "write", "destructive"]})  # fmt: skip
    assert r.status_code == 403, r.text
    assert world.kube.grants.get(red, "red-grant")["spec"] == before
    # An owner may move it; the old server's policy then drops the grant.
    r = await world.api.client.post("/api/runtime/grants", headers=world.headers["red_owner"], json={
        "name": "red-grant", "namespace": red, "serverRef": {"name": "rsrv-m"}, "subject": {"agentID": "bot"},
        "allowedSideEffects": ["read"]})  # fmt: skip
    assert r.status_code == 200, r.text
    policy = read_policy_configmap(world.kube.objects, red, "rsrv") or ""
    assert "red-grant" not in policy and "deleg-grant" in policy
    await world.restore()


async def test_adapter_session_answers_the_same_for_unknown_and_foreign_servers(world: World) -> None:
    red = world.names["red_ns"]
    answers = []
    for server in ("rsrv", f"ghost-{uuid.uuid4().hex[:6]}"):
        r = await world.api.client.post("/api/runtime/adapter/sessions", headers=world.headers["blue_owner"],
                                        json={"serverName": server, "namespace": red, "agentID": "bot"})
        answers.append((r.status_code, r.json()["error"], r.json()["message"].replace(server, "S")))
    assert answers[0] == answers[1] and answers[0][0] == 403, answers
    # In a namespace that does not exist at all, too.
    r = await world.api.client.post("/api/runtime/adapter/sessions", headers=world.headers["blue_owner"],
                                    json={"serverName": "rsrv", "namespace": "mcp-team-nowhere", "agentID": "bot"})
    assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text


async def test_server_events_are_redacted_for_plain_members(world: World) -> None:
    red = world.names["red_ns"]
    params = {"namespace": red, "server": "rsrv"}
    full = await world.api.client.get("/api/runtime/server-events", params=params, headers=world.headers["red_owner"])
    assert full.status_code == 200 and full.json()["events"][0]["human_id"] == "alice"
    assert "redacted" not in full.json()
    plain = await world.api.client.get("/api/runtime/server-events", params=params,
                                       headers=world.headers["red_member"])
    body = plain.json()
    assert plain.status_code == 200 and len(body["events"]) == len(full.json()["events"]) == 2
    for event in body["events"]:
        assert event["server"] == "rsrv" and event["decision"] == "allow" and event["tool_name"] == "t"
        assert not {"human_id", "agent_id", "session_id", "subject_team_id", "trace_id", "payload"} & set(event)
    assert "alice" not in plain.text and "sess-alice" not in plain.text
    assert set(body["redacted"]) >= {"human_id", "session_id", "payload"}


async def test_usage_analytics_hide_other_peoples_identities_from_plain_members(world: World) -> None:
    """The server-events rule cannot be sidestepped through usage analytics of the same namespace."""
    c, red = world.api.client, world.names["red_ns"]
    owner = (await c.get("/api/user/analytics/usage", headers=world.headers["red_owner"])).json()
    assert {r["human_id"] for r in owner["recent"]} == {"alice"} and "redacted" not in owner
    assert {a.get("human_id") for a in owner["actors"]} == {"alice"}
    member = await c.get("/api/user/analytics/usage", params={"namespace": red}, headers=world.headers["red_member"])
    body = member.json()
    assert member.status_code == 200 and body["totals"]["events"] == owner["totals"]["events"] == 2
    assert body["recent"] and all(r["server"] == "rsrv" and "human_id" not in r and "session_id" not in r
                                  for r in body["recent"])
    assert all("human_id" not in a and "agent_id" not in a for a in body["actors"] + body["tools"])
    assert "alice" not in member.text and "sess-alice" not in member.text
    assert body["redacted"] == ["human_id", "agent_id", "session_id"]


# Outside red's team, any name answers like the real object: (template, the real object's name).
PROBES = (
    ("GET /api/runtime/grants/{red_ns}/NAME", "red-grant"),
    ("GET /api/runtime/sessions/{red_ns}/NAME", "red-sess"),
    ("DELETE /api/runtime/grants/{red_ns}/NAME", "red-grant"),
    ("GET /api/runtime/servers/{red_ns}/NAME?live=false", "rsrv"),
    ("GET /api/runtime/policy?namespace={red_ns}&server=NAME", "rsrv"),
    ("GET /api/runtime/server-events?namespace={red_ns}&server=NAME", "rsrv"),
    ("GET /api/runtime/observability/links?namespace={red_ns}&server=NAME", "rsrv"),
    ("POST /api/runtime/adapter/sessions", "rsrv"),
    ("GET /api/runtime/teams/NAME", "{red_team}"),
)
PROBERS = ("blue_owner", "blue_member", "blue_key", "outsider", "service")
NAMES = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?\Z")


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=NAMES)
async def test_outsiders_cannot_tell_which_names_exist(world: World, name: str) -> None:
    """Property over object names: for callers outside team red, every probe answers an arbitrary
    name exactly as it answers the existing object (status, code, message with the name swapped)."""
    for template, real in PROBES:
        real = _fill(real, world.names)

        async def ask(caller: str, n: str, template: str = template) -> tuple[int, str, str]:
            request = _fill(template.replace("NAME", n), world.names)
            body = ({"serverName": n, "namespace": world.names["red_ns"], "agentID": "bot"}
                    if "adapter" in template else None)
            got = await _send(world, caller, request, body, {})
            return got.status, got.error, got.message

        def same(a: tuple[int, str, str], b: tuple[int, str, str], names: tuple[str, str]) -> bool:
            # Both names swapped out of both messages: a probe name that is also an English word
            # ("a") must not make the same sentence look different.
            def norm(m: str) -> str:
                for n in names:
                    m = re.sub(rf"(?<![\w-]){re.escape(n)}(?![\w-])", "NAME", m)
                return m
            return a[:2] == b[:2] and norm(a[2]) == norm(b[2])

        for caller in PROBERS:
            got, want = await ask(caller, name), await ask(caller, real)
            assert same(got, want, (name, real)), (caller, template, name, got, want)
