"""Webhooks send themselves, once per event, to public addresses only."""

from __future__ import annotations

import base64
import hashlib
import http.server
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.api.state import ApiState
from ledger.cli import main
from ledger.config import Config
from ledger.domain import clock
from ledger.services import webhook_targets, webhooks
from ledger.services.webhook_loop import WebhookLoop
from ledger.services.webhook_targets import TargetRefused, refusal
from ledger.store.db import StoreUnavailable
from tests.certification_flow import Flow
from tests.served import serve
from tests.test_institutions import OTHER, SCHOOL, _b64, _published, _pupil, _school_token

T0 = datetime(2026, 12, 1, 11, tzinfo=UTC)
PUBLIC = "93.184.215.14"  # what the stub resolver answers for a school's public host


class Receiver:
    """A school's real HTTP endpoint: records each POST; answers 500 to the first `failures`."""

    def __init__(self, failures: int = 0, status: int = 204, delay: float = 0.0):
        self.failures, self.status, self.delay = failures, status, delay
        self.received: list[tuple[bytes, Any, str]] = []  # body, headers, request path
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/pix"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)  # widens the window two dispatchers could share
                with receiver._lock:
                    receiver.received.append((body, self.headers, self.path))
                    failing = len(receiver.received) <= receiver.failures
                self.send_response(500 if failing else receiver.status)
                if receiver.status == 302:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, *_ in self.received]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def check_signature(
    client: Any, body: bytes, headers: Any, path: str, scheme: str = "http"
) -> None:
    """RFC 9421 verification from the request and the JWKS only, as the school would.

    The target URI is rebuilt from what arrived (scheme, Host header, request
    path), never from the URL the school registered.
    """
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    assert headers["Content-Digest"] == digest
    params = headers["Signature-Input"].removeprefix("sig1=")
    kid = params.split('keyid="')[1].split('"')[0]
    target = f"{scheme}://{headers['Host']}{path}"
    base = (
        f'"@method": POST\n"@target-uri": {target}\n"content-digest": {digest}\n'
        f'"content-type": {headers["Content-Type"]}\n"@signature-params": {params}'
    )
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    signature = base64.b64decode(headers["Signature"].removeprefix("sig1=:").removesuffix(":"))
    Ed25519PublicKey.from_public_bytes(_b64(jwk["x"])).verify(signature, base.encode())


@pytest.fixture
def flow(app: Any, client: Any, admin: dict[str, str]) -> Flow:
    return Flow(app, client, admin)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _state(app: Any) -> ApiState:
    return app.extensions["ledger"]


def _register(flow: Flow, url: str, school: str = SCHOOL) -> Any:
    token = _school_token(flow, school)
    return flow.client.post(
        f"/api/v1/institutions/{school}/webhooks", json={"url": url}, headers=token
    )


def _hook(flow: Flow, url: str) -> str:
    """A webhook of SCHOOL to a private test receiver (allowed for this app only)."""
    _state(flow.app).webhooks.allow_private = True
    response = _register(flow, url)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _three_events(flow: Flow) -> str:
    """A pupil of SCHOOL published, rescored, then cancelled; one of OTHER published. The code."""
    pupil = _pupil(flow, SCHOOL, "INE00000001A")
    other = _pupil(flow, OTHER, "INE00000003C")
    session = flow.session()["id"]
    courses = {}
    for candidate in (pupil, other):
        flow.enrol(session, candidate)
        courses[candidate] = flow.start(session, candidate)
        flow.answer_all(courses[candidate], wrong=1)
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)
    with clock.frozen_at(T0 - timedelta(hours=1)):
        issued = flow.post(f"/api/v1/sessions/{session}/publication", {}, flow.admin)
    (code,) = [c["code"] for c in issued["certificates"] if c["candidate"] == pupil]
    wrong = courses[pupil]["challenges"][0]["challenge"]
    flow.post(f"/api/v1/certificates/{code}/rescoring",
              {"neutralize": [wrong], "reason": "late issue report"}, flow.admin)  # fmt: skip
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, flow.admin)
    return code


def _log(flow: Flow) -> list[dict[str, Any]]:
    token = _school_token(flow, SCHOOL)
    response = flow.client.get(f"/api/v1/institutions/{SCHOOL}/webhooks/deliveries", headers=token)
    return response.get_json()["deliveries"]


REFUSED = {
    "https://127.0.0.1/hooks": "loopback",
    "https://10.0.0.1/hooks": "private",
    "https://[::1]/hooks": "loopback",
    "https://169.254.169.254/latest/meta-data": "link-local",
    "https://localhost/hooks": "loopback",
    "https://[fd12:3456::1]/hooks": "private",
    "https://[fe80::1]/hooks": "link-local",
    "https://224.0.0.1/hooks": "multicast",
    "https://0.0.0.0/hooks": "unspecified",
    "https://240.0.0.1/hooks": "reserved",
    "https://[2002:7f00:1::1]/hooks": "loopback",  # 6to4 around 127.0.0.1
    "https://[2002:a00:1::1]/hooks": "private",  # 6to4 around 10.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/hooks": "link-local",  # NAT64 around 169.254.169.254
    "https://[::7f00:1]/hooks": "loopback",  # IPv4-compatible 127.0.0.1
    "https://[fec0::1]/hooks": "site-local",
}
PLAIN_HTTP = ("http://127.0.0.1/h", "http://10.0.0.1/h", "http://[::1]/h",
              "http://169.254.169.254/h", "http://localhost/h")  # fmt: skip


def test_registration_refuses_private_targets(flow: Flow, client: Any) -> None:
    for url, reason in REFUSED.items():
        response = _register(flow, url)
        assert response.status_code == 422, url
        problem = response.get_json()
        assert problem["type"] == "/problems/webhook-target-refused"
        assert f"a {reason} address" in problem["detail"], (url, problem["detail"])
    for url in PLAIN_HTTP:
        response = _register(flow, url)
        assert response.status_code == 422 and "https" in response.get_json()["detail"], url
    unresolvable = _register(flow, "https://no-such-host.invalid/hooks")
    assert "does not resolve" in unresolvable.get_json()["detail"]
    not_a_url = _register(flow, "ftp://school.example/hooks")
    assert not_a_url.status_code == 422 and "url" in json.dumps(not_a_url.get_json())
    foreign = client.get(
        f"/api/v1/institutions/{SCHOOL}/webhooks/deliveries", headers=_school_token(flow, OTHER)
    )
    assert foreign.status_code == 403
    page = client.get("/problems/webhook-target-refused?lang=fr")
    assert page.status_code == 200 and "adresse" in page.get_data(as_text=True)
    for url, what in (("https://user:pw@school.example/h", "user info"),
                      ("https://school.example/h#top", "fragment")):  # fmt: skip
        response = _register(flow, url)
        assert response.status_code == 422 and what in response.get_json()["detail"], url
    _state(flow.app).webhooks.allow_private = True  # development: private targets allowed
    _state(flow.app).webhooks.max_per_school = 10
    for url in (*PLAIN_HTTP, "https://10.0.0.1/hooks"):
        assert _register(flow, url).status_code == 201, url


def test_mapped_and_shared_addresses_are_not_public() -> None:
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1")) == "loopback"
    assert refusal(ipaddress.ip_address("100.64.0.1")) == "not globally routable"
    assert refusal(ipaddress.ip_address(PUBLIC)) is None
    assert refusal(ipaddress.ip_address("2002:5db8:d70e::1")) is None  # 6to4 of a public one
    teredo = ipaddress.ip_address("2001:0:4136:e378:8000:63bf:80ff:fffe")  # client 127.0.0.1
    assert teredo.teredo[1] == ipaddress.ip_address("127.0.0.1") and refusal(teredo)


def test_send_rechecks_the_address_and_connects_to_it(flow: Flow, receiver: Receiver) -> None:
    """A name re-pointed at a private address after registration gets nothing."""
    hooks = _state(flow.app).webhooks
    addresses = {"hooks.school.example": PUBLIC}
    hooks.resolver = lambda host, port: [addresses[host]]
    url = f"https://hooks.school.example:{receiver.server.server_port}/hooks/pix"
    assert _register(flow, url).status_code == 201
    _published(flow)
    addresses["hooks.school.example"] = "127.0.0.1"  # DNS rebinding
    with clock.frozen_at(T0):
        assert _state(flow.app).dispatch_webhooks() == {"queued": 1, "delivered": 0, "failed": 1}
    (entry,) = _log(flow)
    assert (
        entry["last_error"] == "refused: url: hooks.school.example resolves to a loopback address"
    )
    assert receiver.received == []
    hooks.allow_private = True  # now allowed: the request goes to the address resolved, by name
    hooks.resolver = lambda host, port: ["127.0.0.1"]
    plain = f"http://hooks.school.example:{receiver.server.server_port}/hooks/pix"
    assert webhooks.post(plain, b"{}", {}, allow_private=True, resolver=hooks.resolver) == 204
    assert receiver.received[-1][1]["Host"] == f"hooks.school.example:{receiver.server.server_port}"


def test_post_reports_status_no_redirect_and_unreachable() -> None:
    with Receiver(failures=1, status=302) as receiver:
        assert webhooks.post(receiver.url, b"{}", {}, allow_private=True) == 500
        assert webhooks.post(receiver.url, b"{}", {}, allow_private=True) == 302  # not followed
        with pytest.raises(TargetRefused):
            webhooks.post(receiver.url, b"{}", {})
        url = receiver.url
    assert len(receiver.received) == 2
    assert webhooks.post(url, b"{}", {}, allow_private=True) == 0


def test_two_dispatchers_send_each_event_once(
    flow: Flow, client: Any, config: Config, tmp_path: Path
) -> None:
    """Two nodes (own connections, own read models) dispatching at once: one POST per event."""
    with Receiver(delay=0.05) as receiver:
        _hook(flow, receiver.url)
        code = _three_events(flow)
        nodes = [ApiState.open(replace(config, webhook_allow_private=True)) for _ in range(2)]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(node: ApiState) -> None:
            start.wait()
            try:
                for _ in range(5):
                    node.dispatch_webhooks()
            except BaseException as exc:  # a thread's failure must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(node,)) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for node in nodes:
            node.ledger.close()
    assert errors == []
    events = receiver.events()
    assert sorted(e["event"] for e in events) == ["cancellation", "publication", "rescoring"]
    assert len({e["seq"] for e in events}) == 3 and {e["code"] for e in events} == {code}
    assert all(e["delivery"] == f"{e['delivery'].split('/')[0]}/{e['seq']}" for e in events)
    for body, headers, path in receiver.received:
        check_signature(client, body, headers, path)
    log = _log(flow)
    assert [(e["status"], e["attempts"]) for e in log] == [("delivered", 1)] * 3


def test_failing_receiver_is_retried_with_backoff(flow: Flow) -> None:
    with Receiver(failures=2) as receiver:
        _hook(flow, receiver.url)
        _published(flow)
        dispatch = _state(flow.app).dispatch_webhooks
        steps = [(0, "failed"), (5, None), (11, "failed"), (11 + 59, None), (11 + 61, "delivered")]
        for seconds, outcome in steps:
            with clock.frozen_at(T0 + timedelta(seconds=seconds)):
                counts = dispatch()
            assert counts["queued"] == (1 if seconds == 0 else 0)
            sent = {k for k in ("delivered", "failed") if counts[k]}
            assert sent == ({outcome} if outcome else set()), (seconds, counts)
    assert len(receiver.received) == 3 and len({body for body, *_ in receiver.received}) == 1
    (entry,) = _log(flow)
    assert entry["status"] == "delivered" and entry["attempts"] == 3
    assert entry["delivered"] == clock.format_time(T0 + timedelta(seconds=72))


def test_expired_lease_is_sent_again(flow: Flow, receiver: Receiver) -> None:
    """A dispatcher that claimed a delivery and died: sent once its lease has expired."""
    _hook(flow, receiver.url)
    _published(flow)
    st = _state(flow.app)
    with clock.frozen_at(T0):
        st.fresh()
        assert st.webhooks.enqueue() == 1
        (entry,) = _log(flow)
        assert st.webhooks.claim(entry["webhook"], entry["seq"], T0) == (
            clock.format_time(T0 + timedelta(seconds=webhooks.LEASE_SECONDS)),
            0,
        )
        assert st.webhooks.claim(entry["webhook"], entry["seq"], T0) is None  # held
    with clock.frozen_at(T0 + timedelta(seconds=webhooks.LEASE_SECONDS - 1)):
        assert st.dispatch_webhooks() == {"queued": 0, "delivered": 0, "failed": 0}
    with clock.frozen_at(T0 + timedelta(seconds=webhooks.LEASE_SECONDS)):
        assert st.dispatch_webhooks() == {"queued": 0, "delivered": 1, "failed": 0}
    assert len(receiver.received) == 1 and _log(flow)[0]["status"] == "delivered"


def test_cli_sends(
    flow: Flow, receiver: Receiver, database_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    _hook(flow, receiver.url)
    _published(flow)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LEDGER_WEBHOOK_ALLOW_PRIVATE", "1")
    result = CliRunner().invoke(main, ["webhooks", "send"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "queued 1, delivered 1, failed 0"
    assert [e["event"] for e in receiver.events()] == ["publication"]
    monkeypatch.setenv("LEDGER_WEBHOOK_ALLOW_PRIVATE", "yes")
    bad = CliRunner().invoke(main, ["webhooks", "send"])
    assert bad.exit_code == 1 and "must be 0 or 1" in bad.stderr


def test_served_app_delivers_without_any_call(
    flow: Flow, client: Any, receiver: Receiver, database_url: str, tmp_path: Path
) -> None:
    """Two workers of a real server, each with its loop: the school gets the event once."""
    _hook(flow, receiver.url)
    _, code, _ = _published(flow)
    env = {"LEDGER_WEBHOOK_ALLOW_PRIVATE": "1", "LEDGER_WEBHOOK_INTERVAL_S": "1"}
    with serve(database_url, tmp_path / "keys", workers=2, env=env):
        deadline = time.monotonic() + 30
        while not any(e["status"] == "delivered" for e in _log(flow)):
            assert time.monotonic() < deadline, _log(flow)
            time.sleep(0.2)
    (event,) = receiver.events()
    assert event["event"] == "publication" and event["code"] == code
    check_signature(client, *receiver.received[0])
    assert _log(flow)[0]["attempts"] == 1


def test_loop_survives_failures_and_stops() -> None:
    """A dispatch that raises is logged and retried; stop() ends the thread."""
    calls: list[int] = []
    third = threading.Event()

    def dispatch() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise StoreUnavailable("database unavailable: down")
        if len(calls) == 2:
            raise RuntimeError("a bug")
        third.set()

    loop = WebhookLoop(dispatch, interval=0.01).start()
    assert third.wait(10)
    loop.stop()
    assert not loop._thread.is_alive() and len(calls) >= 3


def _named(flow: Flow, names: dict[str, str]) -> None:
    """Host names of the test resolve as `names` says; private targets allowed (test only)."""
    hooks = _state(flow.app).webhooks
    hooks.allow_private = True
    hooks.resolver = lambda host, port: [names[host]]


def test_url_is_normalised_and_signed_as_sent(flow: Flow, client: Any, receiver: Receiver) -> None:
    """What the receiver rebuilds from Host and path is exactly the signed target URI."""
    port = receiver.server.server_port
    _named(flow, {"hooks.school.example": "127.0.0.1", "xn--lyce-dpa.example": PUBLIC})
    registered = _register(flow, f"HTTP://Hooks.School.EXAMPLE:{port}").get_json()
    assert registered["url"] == f"http://hooks.school.example:{port}/"
    idna = _register(flow, "https://LYCÉE.example:443/é?x=1").get_json()
    assert idna["url"] == "https://xn--lyce-dpa.example/%C3%A9?x=1"
    _published(flow)
    with clock.frozen_at(T0):
        _state(flow.app).dispatch_webhooks()
    (body, headers, path) = receiver.received[0]
    assert path == "/" and headers["Host"] == f"hooks.school.example:{port}"
    check_signature(client, body, headers, path)


def test_each_url_once_capped_listed_and_deleted(flow: Flow, client: Any) -> None:
    _named(flow, {f"h{n}.school.example": PUBLIC for n in range(7)})
    first = _register(flow, "https://h0.school.example/hook").get_json()
    again = _register(flow, "HTTPS://h0.School.Example:443/hook")
    assert again.status_code == 409 and again.get_json()["type"] == "/problems/webhook-exists"
    assert first["id"] in again.get_json()["detail"]
    for n in range(1, 5):
        assert _register(flow, f"https://h{n}.school.example/hook").status_code == 201
    full = _register(flow, "https://h5.school.example/hook")
    assert full.status_code == 409 and full.get_json()["type"] == "/problems/webhook-limit"
    assert client.get("/problems/webhook-limit?lang=fr").status_code == 200
    token, other = _school_token(flow, SCHOOL), _school_token(flow, OTHER)
    listed = client.get(f"/api/v1/institutions/{SCHOOL}/webhooks", headers=token).get_json()
    assert listed["webhooks"][0]["url"] == "https://h0.school.example/hook"
    assert len(listed["webhooks"]) == 5
    assert client.get(f"/api/v1/institutions/{SCHOOL}/webhooks", headers=other).status_code == 403
    path = f"/api/v1/institutions/{SCHOOL}/webhooks/{first['id']}"
    assert client.delete(path, headers=other).status_code == 403
    foreign = f"/api/v1/institutions/{OTHER}/webhooks/{first['id']}"
    assert client.delete(foreign, headers=other).status_code == 404  # not OTHER's webhook
    _published(flow)
    with clock.frozen_at(T0):
        _state(flow.app).fresh()
        assert _state(flow.app).webhooks.enqueue() == 5
    deleted = client.delete(path, headers=token)
    assert deleted.get_json() == {"deleted": first["id"], "dropped_deliveries": 1}
    assert client.delete(path, headers=token).status_code == 404
    assert first["id"] not in {e["webhook"] for e in _log(flow)} and len(_log(flow)) == 4
    assert _register(flow, "https://h5.school.example/hook").status_code == 201


def _tampered(flow: Flow, receiver: Receiver, sql: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """Queue, tamper with the database, dispatch: the receiver gets nothing; the log entry."""
    st = _state(flow.app)
    with clock.frozen_at(T0):
        st.fresh()
        st.webhooks.enqueue()
        with st.ledger.db.write(lock=None) as cur:
            cur.execute(sql, params)
        assert st.webhooks.deliver() == {"delivered": 0, "failed": 1}
    assert receiver.received == []
    (entry,) = [e for e in _log(flow) if e["status"] == "failed"]
    assert entry["last_error"].startswith("integrity: ") and entry["attempts"] == 1
    assert st.integrity_alarms and flow.client.get("/api/v1/ready").status_code == 503
    return entry


def test_a_forged_delivery_body_is_not_sent(flow: Flow, receiver: Receiver) -> None:
    """A database writer turning a publication into a cancellation gets no signed POST."""
    _hook(flow, receiver.url)
    _published(flow)
    entry = _tampered(flow, receiver, "UPDATE webhook_deliveries SET body = replace(body,"
                      " 'publication', 'cancellation')", ())  # fmt: skip
    assert "differs from the signed events" in entry["last_error"]


def test_a_forged_school_is_not_told(flow: Flow, receiver: Receiver) -> None:
    """Another school's pupil moved into SCHOOL in the read model: the signed one decides."""
    _hook(flow, receiver.url)
    pupil = _pupil(flow, OTHER, "INE00000003C")
    session = flow.session()["id"]
    flow.enrol(session, pupil)
    flow.answer_all(flow.start(session, pupil))
    flow.finalize(session)
    flow.publish(session)
    _state(flow.app).fresh()
    with _state(flow.app).ledger.db.write(lock=None) as cur:
        cur.execute("UPDATE proj_candidates SET school = ? WHERE candidate = ?", (SCHOOL, pupil))
    entry = _tampered(flow, receiver, "SELECT 1", ())
    assert f"not about a pupil of {SCHOOL}" in entry["last_error"]


def test_a_forged_event_is_not_sent(flow: Flow, receiver: Receiver) -> None:
    _hook(flow, receiver.url)
    _, code, _ = _published(flow)
    seq = _state(flow.app).ledger.recorder.iter_envelopes_of_type(
        "certification.CertificateIssued")[-1].seq  # fmt: skip
    entry = _tampered(flow, receiver, "UPDATE ledger_events SET data = replace(data, ?, ?)"
                      " WHERE seq = ?", (code, "P-AAAAAAAA", seq))  # fmt: skip
    assert f"the event at seq {seq} does not verify (hash" in entry["last_error"]


def test_body_names_the_signed_event(flow: Flow, receiver: Receiver) -> None:
    _hook(flow, receiver.url)
    _, code, _ = _published(flow)
    with clock.frozen_at(T0):
        _state(flow.app).dispatch_webhooks()
    (event,) = receiver.events()
    env = _state(flow.app).ledger.recorder.envelope(event["seq"])
    assert event["hash"] == env.hash and event["code"] == code
    assert (event["event"], event["school"]) == ("publication", SCHOOL)


class Trickler:
    """A receiver that answers one header byte a second, for ever: it must not hold a sender."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/h"
        self.cut = threading.Event()  # the sender closed the connection
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60:
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    break
                if _closed(connection):
                    break
                time.sleep(1)
        self.cut.set()


def _closed(connection: socket.socket) -> bool:
    """True once the other end has closed the connection."""
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # open, nothing sent
    except OSError:
        return True


def test_a_trickling_receiver_is_cut_at_the_deadline(monkeypatch: Any) -> None:
    monkeypatch.setattr(webhook_targets, "DEADLINE_SECONDS", 2)
    trickler = Trickler()
    assert webhooks.post(trickler.url, b"{}", {}, allow_private=True) == 0
    assert trickler.cut.wait(30)  # the connection was closed long before the 60 bytes


def test_a_slow_name_lookup_is_refused(monkeypatch: Any) -> None:
    monkeypatch.setattr(webhook_targets, "RESOLVE_SECONDS", 0.2)
    release = threading.Event()

    def stuck(host: str, port: int) -> list[str]:
        release.wait(30)
        return [PUBLIC]

    with pytest.raises(TargetRefused, match="does not resolve"):
        webhook_targets.check("https://slow.example/h", resolver=stuck)
    release.set()


def test_a_failing_host_keeps_its_share_a_healthy_one_takes_more(
    flow: Flow, monkeypatch: Any
) -> None:
    """A host that fails gets PER_HOST attempts per round; a prompt one is sent all it is due."""
    monkeypatch.setattr(webhooks, "PER_HOST", 2)
    monkeypatch.setattr(webhooks, "PROMPT_SECONDS", 60.0)  # scheduling under test, not speed
    with Receiver(failures=100) as a, Receiver() as b:
        _named(flow, {"a.example": "127.0.0.1", "b.example": "127.0.0.1"})
        for name, receiver in (("a", a), ("b", b)):
            url = f"http://{name}.example:{receiver.server.server_port}/hook"
            assert _register(flow, url).status_code == 201
        _three_events(flow)
        with clock.frozen_at(T0):
            assert _state(flow.app).dispatch_webhooks() == {"queued": 6, "delivered": 3,
                                                            "failed": 2}  # fmt: skip
            assert (len(a.received), len(b.received)) == (2, 3)
            assert _state(flow.app).dispatch_webhooks() == {"queued": 0, "delivered": 0,
                                                            "failed": 1}  # fmt: skip
    assert sorted(e["event"] for e in b.events()) == ["cancellation", "publication", "rescoring"]


def test_a_webhook_registered_before_hosts_were_stored_is_served(
    flow: Flow, receiver: Receiver
) -> None:
    """A webhook from before migration 3 has no host: its URL stands for it."""
    _hook(flow, receiver.url)
    with _state(flow.app).ledger.db.write(lock=None) as cur:
        cur.execute("UPDATE webhooks SET host = ''")
    _published(flow)
    with clock.frozen_at(T0):
        assert _state(flow.app).dispatch_webhooks() == {"queued": 1, "delivered": 1, "failed": 0}
    assert len(receiver.received) == 1


def _backlog(flow: Flow, hook_id: str, size: int, monkeypatch: Any) -> None:
    """`size` due deliveries for the webhook, older than any real one (seq -size … -1).

    They stand for as many published pupils; their signed events are not built here
    (the round's scheduling is under test), so their body is what was queued.
    """
    rows = [(hook_id, -n, json.dumps({"delivery": f"{hook_id}/{-n}", "seq": -n}),
             clock.format_time(T0)) for n in range(1, size + 1)]  # fmt: skip
    with _state(flow.app).ledger.db.write(lock=None) as cur:
        cur.executemany(
            "INSERT INTO webhook_deliveries (webhook, seq, body, attempts, next_attempt, status)"
            " VALUES (?, ?, ?, 0, ?, 'pending')",
            rows,
        )
    signed = webhooks.Webhooks.signed_body

    def body(self: webhooks.Webhooks, hook: str, seq: int, school: str) -> dict[str, Any]:
        if seq > 0:
            return signed(self, hook, seq, school)
        return {"delivery": f"{hook}/{seq}", "seq": seq}

    monkeypatch.setattr(webhooks.Webhooks, "signed_body", body)


def test_a_school_backlog_does_not_hold_another_school(flow: Flow, monkeypatch: Any) -> None:
    """1,200 due for school A's host and 1 for B's: B's goes in the first round, A drains fast."""
    monkeypatch.setattr(webhooks, "BURST_PER_HOST", 100)
    monkeypatch.setattr(webhooks, "PROMPT_SECONDS", 60.0)  # scheduling under test, not speed
    monkeypatch.setattr(webhooks, "ROUND_SECONDS", 3600.0)
    with Receiver() as a, Receiver() as b:
        _named(flow, {"a.example": "127.0.0.1", "b.example": "127.0.0.1"})
        urls = [f"http://{n}.example:{r.server.server_port}/hook" for n, r in (("a", a), ("b", b))]
        hook_a = _register(flow, urls[0], SCHOOL).get_json()["id"]
        assert _register(flow, urls[1], OTHER).status_code == 201
        _three_events(flow)  # 3 events of a pupil of A, 1 of a pupil of B
        _state(flow.app).fresh()
        assert _state(flow.app).webhooks.enqueue() == 4
        _backlog(flow, hook_a, 1200, monkeypatch)
        rounds = []
        with clock.frozen_at(T0):
            while len(a.received) < 1203:
                rounds.append(_state(flow.app).dispatch_webhooks())
                assert len(rounds) <= 13  # 3 per round would take 401
                if len(rounds) == 1:
                    assert [e["event"] for e in b.events()] == ["publication"]
                    assert len(a.received) == 100
    assert all(r["failed"] == 0 for r in rounds) and len(b.received) == 1
    assert len({e["seq"] for e in a.events()}) == 1203


def test_stuck_name_lookups_refuse_only_their_hosts(monkeypatch: Any) -> None:
    """Hosts whose DNS never answers hold their own lookups, not everyone's."""
    monkeypatch.setattr(webhook_targets, "RESOLVE_SECONDS", 0.2)
    monkeypatch.setattr(webhook_targets, "_lookups", webhook_targets.Lookups())
    release = threading.Event()

    def resolver(host: str, port: int) -> list[str]:
        if host.startswith("stuck"):
            release.wait(60)
        return [PUBLIC]

    def check(host: str, owner: str) -> Any:
        return webhook_targets.check(f"https://{host}/h", resolver=resolver, owner=owner)

    try:
        for n in range(8):  # more stuck names than the old shared pool had threads
            with pytest.raises(TargetRefused, match=f"stuck{n}.example does not resolve"):
                check(f"stuck{n}.example", owner=f"school{n}")
        assert check("good.example", owner="school0").address == PUBLIC
        with pytest.raises(TargetRefused, match="does not resolve"):
            check("stuck1.example", owner="school9")  # its second lookup waits, then times out
        with pytest.raises(TargetRefused, match="earlier lookups still unanswered"):
            check("stuck1.example", owner="school9")  # a third is refused at once
        for n in range(3):  # one school's stuck names hold at most LOOKUPS_PER_OWNER threads
            with pytest.raises(TargetRefused, match="does not resolve"):
                check(f"stuck-s{n}.example", owner="school0")
        with pytest.raises(webhook_targets.LookupBusy):
            check("good.example", owner="school0")
        assert check("good.example", owner="school8").address == PUBLIC
        monkeypatch.setattr(webhook_targets, "LOOKUPS", 12)  # all taken: busy, for anyone
        with pytest.raises(webhook_targets.LookupBusy, match="could not be looked up now"):
            check("good.example", owner="school8")
    finally:
        release.set()


def test_a_busy_lookup_is_not_the_receivers_failure(
    flow: Flow, receiver: Receiver, monkeypatch: Any
) -> None:
    """A send refused because every lookup thread is busy stays due, its attempts unchanged."""
    _named(flow, {"hooks.school.example": "127.0.0.1"})
    assert _register(flow, f"http://hooks.school.example:{receiver.server.server_port}/h")
    _published(flow)
    monkeypatch.setattr(webhook_targets, "LOOKUPS", 0)
    with clock.frozen_at(T0):
        assert _state(flow.app).dispatch_webhooks() == {"queued": 1, "delivered": 0, "failed": 0}
    (entry,) = _log(flow)
    assert (entry["status"], entry["attempts"], entry["last_error"]) == ("pending", 0, None)
    assert entry["next_attempt"] == clock.format_time(T0) and receiver.received == []
    monkeypatch.setattr(webhook_targets, "LOOKUPS", 64)
    with clock.frozen_at(T0):
        assert _state(flow.app).dispatch_webhooks() == {"queued": 0, "delivered": 1, "failed": 0}
    assert _log(flow)[0]["attempts"] == 1


ODD_URLS = st.one_of(
    st.sampled_from(["https://[1:2:3:4:5:6:7:8:9]/h", "https://[a::b::c]/h", "https://[::1/h",
                     "https://[v1.x]/h", "https://\ud800.example/h", "https://a:99999/h",
                     "https://[::1]:x/h", "https://a..b/h", "https://" + "a" * 70 + ".fr/h",
                     "https://a.example/\udcff", "https://a\x00b.example/h", "https:///h"]),
    st.text(max_size=60),
    st.text(max_size=40).map(lambda rest: f"https://{rest}"),
    st.text(alphabet="0123456789abcdef:.%[]/@#?", max_size=40).map(lambda r: f"https://[{r}"),
)  # fmt: skip


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(url=ODD_URLS)
def test_odd_urls_are_refused_never_a_500(flow: Flow, url: str) -> None:
    _state(flow.app).webhooks.resolver = lambda host, port: [PUBLIC]
    response = _register(flow, url)
    assert response.status_code in (201, 409, 422), (url, response.status_code)
    if response.status_code != 201:
        assert response.content_type == "application/problem+json"


def test_bracketed_hosts_that_are_no_address_are_refused(flow: Flow) -> None:
    for url in ("https://[1:2:3:4:5:6:7:8:9]/h", "https://[a::b::c]/h"):
        response = _register(flow, url)
        assert response.status_code == 422, url
        assert response.get_json()["detail"] == "url: not a valid URL (expected https://host/path)"


def test_openapi_describes_the_payload_and_the_log(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    post = spec["webhooks"]["certificateEvent"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    payload = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert payload["properties"]["event"]["enum"] == ["publication", "cancellation", "rescoring"]
    assert {"delivery", "seq", "hash", "code", "school"} <= set(payload["properties"])
    assert {p["name"] for p in post["parameters"]} == {"Content-Digest", "Signature-Input",
                                                      "Signature"}  # fmt: skip
    log = spec["paths"]["/api/v1/institutions/{uai}/webhooks/deliveries"]["get"]
    ref = log["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    entry = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]["deliveries"]
    delivery = spec["components"]["schemas"][entry["items"]["$ref"].rsplit("/", 1)[-1]]
    assert delivery["properties"]["status"]["enum"] == ["pending", "delivered", "failed"]
    assert delivery["properties"]["body"]["$ref"] == schema["$ref"]
