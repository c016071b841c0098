"""The core: dispatch, introspection, multicall and error masking, with no transport involved."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import TypedDict

import pytest

from gateway import GatewayError
from gateway.context import Context, Services
from gateway.core import UNDERSCORE, Gateway
from gateway.errors import NUMERIC
from gateway.observe import Caller
from gateway.ops import default_registry
from gateway.registry import Registry, operation
from tests.conftest import error_of, make_gateway

OPERATIONS = ["dns_query", "fetch_url", "mx_lookup", "resolve", "reverse_lookup", "tcp_connect", "tls_check"]
SYSTEM = ["system.listMethods", "system.methodHelp", "system.methodSignature", "system.multicall"]


def test_list_methods_in_both_naming_styles(gateway):
    assert gateway.call("system.listMethods") == sorted([*OPERATIONS, *SYSTEM, "rpc.discover"])
    underscored = gateway.call("system_listMethods", style=UNDERSCORE)
    assert underscored == sorted([*OPERATIONS, *(n.replace(".", "_") for n in SYSTEM), "rpc_discover"])
    with pytest.raises(GatewayError):
        gateway.call("system.listMethods", style=UNDERSCORE)


def test_every_listed_method_has_help_and_signature(gateway):
    for name in gateway.call("system.listMethods"):
        help_text = gateway.call("system.methodHelp", [name])
        assert help_text.strip() and "Parameters:" in help_text
        signatures = gateway.call("system.methodSignature", [name])
        assert signatures and all(isinstance(s, list) and s for s in signatures)


def test_method_signature_follows_the_xmlrpc_convention(gateway):
    assert gateway.call("system.methodSignature", ["resolve"]) == [["struct", "string"], ["struct", "string", "string"]]
    assert gateway.call("system.methodSignature", ["tcp_connect"]) == [["struct", "string", "int"]]
    assert gateway.call("system.methodSignature", ["system.listMethods"]) == [["array"]]


def test_help_names_parameters_defaults_and_errors(gateway):
    text = gateway.call("system.methodHelp", ["fetch_url"])
    assert text.startswith("Fetch a URL over HTTP or HTTPS")
    assert "max_bytes (int = 1048576)" in text
    assert "too_many_redirects" in text


def test_unknown_method_and_help_for_it(gateway):
    assert error_of(gateway.call, "nope").code == "method_not_found"
    assert error_of(gateway.call, "system.methodHelp", ["nope"]).code == "method_not_found"


def test_multicall_returns_results_and_faults_in_order(gateway):
    out = gateway.call(
        "system.multicall",
        [
            [
                {"methodName": "resolve", "params": ["www.example.test", "ipv6"]},
                {"methodName": "resolve", "params": ["nope.example.test"]},
                {"methodName": "nope", "params": []},
                {"methodName": "resolve", "params": {"host": "127.0.0.1"}},
                {"methodName": "system.multicall", "params": [[]]},
                {"methodName": "resolve"},
                "not a struct",
                {"methodName": "resolve", "params": ["x"], "extra": 1},
            ]
        ],
    )
    assert out[0][0]["addresses"] == [{"family": "ipv6", "address": "2001:db8::10"}]
    assert out[1] == {"faultCode": NUMERIC["not_found"], "faultString": "not_found: no such domain: nope.example.test"}
    assert out[2]["faultCode"] == -32601
    assert out[3][0]["addresses"] == [{"family": "ipv4", "address": "127.0.0.1"}]
    assert out[4]["faultCode"] == -32602 and "cannot be nested" in out[4]["faultString"]
    assert out[5]["faultString"].startswith("invalid_argument: resolve needs parameter 'host'")
    assert out[6]["faultCode"] == -32602
    assert "unknown member 'extra'" in out[7]["faultString"]


def test_multicall_runs_its_calls_concurrently(gateway, dns_server):
    """Twenty lookups of a name the server answers slowly are all in flight at the DNS server at once."""
    dns_server.authority.max_in_flight = 0
    calls = [{"methodName": "resolve", "params": ["slow.example.test", "ipv4"]} for _ in range(20)]
    out = gateway.call("system.multicall", [calls])
    assert all(r[0]["addresses"] == [{"family": "ipv4", "address": "192.0.2.50"}] for r in out)
    assert dns_server.authority.max_in_flight >= 10


def test_multicall_over_the_batch_limit_is_refused(settings):
    gw = Gateway(Registry(), Services.from_settings(settings.replace(max_batch=3)))
    calls = [{"methodName": "system.listMethods"}] * 4
    err = error_of(gw.call, "system.multicall", [calls])
    assert err.code == "invalid_argument" and "at most 3 calls" in err.message
    assert len(gw.call("system.multicall", [calls[:3]])) == 3


def test_a_rate_limit_holds_introspection_back_too(settings):
    """No limit is asked about a system call by default; with a rate set, introspection counts against it."""
    caller = Caller("jsonrpc", "192.0.2.1:4000")
    free = Gateway(Registry(), Services.from_settings(settings))
    for _ in range(5):
        assert "system.listMethods" in free.call("system.listMethods", caller=caller)
    limited = Gateway(Registry(), Services.from_settings(settings.replace(rate_limit=0.001, rate_burst=2)))
    for _ in range(2):
        limited.call("system.listMethods", caller=caller)
    assert error_of(limited.call, "system.listMethods", caller=caller).code == "rate_limited"
    assert limited.call("system.listMethods", caller=Caller("jsonrpc", "192.0.2.2:4000"))  # a client of its own


class Nothing(TypedDict):
    """Nothing."""

    elapsed_ms: float


@operation(errors=())
def explode(ctx: object) -> Nothing:
    """Fail the way a bug does."""
    raise ValueError("secret detail in /srv/gateway/internal/path.py")


def test_unexpected_exceptions_become_internal_without_details(settings, caplog):
    registry = Registry()
    registry.register(explode)
    gw = Gateway(registry, Services.from_settings(settings))
    err = error_of(gw.call, "explode")
    assert err.code == "internal"
    assert "secret" not in err.message and "/srv" not in err.message and "ValueError" not in err.message
    assert "incident" in err.message
    assert "secret detail" in caplog.text  # the operator's log has it all


@operation(errors=())
async def explode_later(ctx: Context) -> Nothing:
    """Fail the way a bug does, in a coroutine operation."""
    await asyncio.sleep(0)
    raise ValueError("secret detail in /srv/gateway/internal/path.py")


class Slept(TypedDict):
    """How long an operation slept."""

    seconds: float


DOZING = {"now": 0, "most": 0}  # doze calls asleep at once (all on the DNS loop's one thread)


@operation(errors=())
async def doze(ctx: Context, seconds: float) -> Slept:
    """Sleep on the DNS loop, as a lookup waits for its answer."""
    DOZING["now"] += 1
    DOZING["most"] = max(DOZING["most"], DOZING["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        DOZING["now"] -= 1
    return {"seconds": seconds}


def coroutine_gateway(settings, *observers) -> Gateway:
    registry = Registry()
    for func in (explode, explode_later, doze):
        registry.register(func)
    return Gateway(registry, Services.from_settings(settings), list(observers))


def test_a_coroutine_operation_s_stray_exception_is_internal_alone_and_in_a_multicall(settings, caplog):
    gw = coroutine_gateway(settings)
    err = error_of(gw.call, "explode_later")
    out = gw.call("system.multicall", [[{"methodName": "explode_later"}, {"methodName": "doze", "params": [0]}]])
    assert err.code == "internal" and out[0]["faultCode"] == NUMERIC["internal"]
    for message in (err.message, out[0]["faultString"]):
        assert "incident" in message and "secret" not in message and "ValueError" not in message
    assert out[1] == [{"seconds": 0}]
    logged = [r for r in caplog.records if r.getMessage().startswith("internal error in explode_later")]
    assert len(logged) == 2 and "secret detail" in caplog.text  # the operator's log has each, in full
    gw.close()


def test_a_coroutine_operation_is_cut_at_its_deadline_alone_and_in_a_multicall(settings):
    gw = coroutine_gateway(settings.replace(timeout=0.2))
    assert error_of(gw.call, "doze", [30]).code == "timeout"
    out = gw.call("system.multicall", [[{"methodName": "doze", "params": [30]}, {"methodName": "doze", "params": [0]}]])
    assert out[0]["faultCode"] == NUMERIC["timeout"] and "0.2 s time limit" in out[0]["faultString"]
    assert out[1] == [{"seconds": 0}]
    gw.close()


def test_a_coroutine_operation_given_no_time_is_a_timeout_and_leaves_nothing_unawaited(settings, recwarn):
    """A caller's deadline (gRPC's) can leave no time by the time the loop starts the operation."""
    gw = coroutine_gateway(settings)
    for _ in range(20):
        assert error_of(gw.call, "doze", [1], timeout=1e-9).code == "timeout"
    gc.collect()
    assert [str(w.message) for w in recwarn if "never awaited" in str(w.message)] == []
    gw.close()


def test_a_multicall_s_lookups_take_their_turns_rather_than_meet_the_outbound_cap(settings):
    """At most multicall_workers elements run at once, lookups as much as threaded calls: a multicall longer
    than the outbound cap is answered in full, in turns, not refused past the cap."""
    gw = coroutine_gateway(settings.replace(max_outbound=4, multicall_workers=4))
    DOZING["most"] = 0
    out = gw.call("system.multicall", [[{"methodName": "doze", "params": [0.02]}] * 12])
    assert out == [[{"seconds": 0.02}]] * 12
    assert DOZING["most"] == 4
    gw.close()


def multicall_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("multicall") and t.ident is not None}


def test_a_multicall_runs_its_dns_lookups_together_on_the_dns_loop_and_the_rest_on_threads(
    settings, dns_server, http_server
):
    """Lookups take no thread each, whatever their number; the other elements run on the multicall threads."""
    gw = make_gateway(settings)
    before = multicall_threads()
    dns_server.authority.max_in_flight = 0
    out = gw.call("system.multicall", [[{"methodName": "resolve", "params": ["slow.example.test", "ipv4"]}] * 20])
    assert all(r[0]["addresses"] == [{"family": "ipv4", "address": "192.0.2.50"}] for r in out)
    assert dns_server.authority.max_in_flight >= 10  # all at once
    assert multicall_threads() == before
    mixed = [
        {"methodName": "tcp_connect", "params": ["127.0.0.1", http_server.port]},
        {"methodName": "mx_lookup", "params": ["example.test"]},
        {"methodName": "tcp_connect", "params": ["127.0.0.1", http_server.port]},
        {"methodName": "resolve", "params": ["nope.example.test"]},
    ]
    out = gw.call("system.multicall", [mixed])
    assert [r[0]["connected"] for r in (out[0], out[2])] == [True, True]
    assert out[1][0]["mx"] and out[3]["faultString"].startswith("not_found")
    assert multicall_threads() - before  # the connections were made on the multicall threads
    gw.close()


def test_every_lookup_of_a_multicall_passes_admission_and_the_observers(settings):
    """Each coroutine element enters through the same door as a call: admitted (or refused) in order, told to
    the observers at its start and its end, its place given back when it ends."""
    recorder = Recorder()
    gw = coroutine_gateway(settings.replace(max_outbound=3), recorder)
    out = gw.call("system.multicall", [[{"methodName": "doze", "params": [0.05]}] * 5])
    assert [r if isinstance(r, list) else r["faultCode"] for r in out] == [[{"seconds": 0.05}]] * 3 + [
        NUMERIC["rate_limited"]
    ] * 2
    assert recorder.heard.count(("started", "doze")) == 5
    assert recorder.heard.count(("finished", "doze", "ok")) == 3
    assert recorder.heard.count(("finished", "doze", "rate_limited")) == 2
    assert recorder.heard[-1] == ("finished", "system.multicall", "ok")  # after every element's end
    out = gw.call("system.multicall", [[{"methodName": "doze", "params": [0]}] * 3])
    assert all(isinstance(r, list) for r in out)  # the first multicall's places were given back
    gw.close()


class Recorder:
    """An observer that writes down what it is told."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, ...]] = []

    def started(self, caller: Caller, method: str) -> None:
        self.heard.append(("started", method))

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        self.heard.append(("finished", method, outcome))

    def answered(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        self.heard.append(("answered", method, outcome))

    def refused(self, caller: Caller, reason: str) -> None:
        self.heard.append(("refused", reason))


def test_observers_hear_of_an_instant_call_once_and_of_any_other_at_its_start_and_end(settings):
    recorder = Recorder()
    gw = Gateway(default_registry(), Services.from_settings(settings), [recorder])
    gw.call("system.listMethods")
    assert error_of(gw.call, "system.methodHelp", ["no_such_method"]).code == "method_not_found"
    assert error_of(gw.call, "resolve", [42]).code == "invalid_argument"
    assert error_of(gw.call, "no.such.method").code == "method_not_found"
    gw.close()
    assert recorder.heard == [
        ("answered", "system.listMethods", "ok"),  # no I/O: never in flight long enough to be seen
        ("answered", "system.methodHelp", "method_not_found"),
        ("started", "resolve"),  # may wait on the network: in flight until it ends
        ("finished", "resolve", "invalid_argument"),
        ("started", "unknown"),
        ("finished", "unknown", "method_not_found"),
    ]


def test_elapsed_ms_is_measured_by_the_core(call):
    result = call("resolve", "127.0.0.1")
    assert isinstance(result["elapsed_ms"], float) and result["elapsed_ms"] >= 0


def test_gateway_error_codes_are_stable():
    assert NUMERIC["invalid_argument"] == -32602 and NUMERIC["method_not_found"] == -32601
    assert all(-32099 <= n <= -32000 for c, n in NUMERIC.items() if c not in ("invalid_argument", "method_not_found"))
    with pytest.raises(ValueError):
        GatewayError("made_up", "x")


@pytest.mark.parametrize(
    "message",
    [
        'Traceback (most recent call last):\n  File "/srv/app.py", line 3',
        "<class 'ValueError'>:bad",
        "error in gateway.transports.rpyc.NetOpsService",
        "object at 0x7f3a2b1c9d40",
        "cannot open /tmp/netops-worker.toml",
    ],
)
def test_the_leak_check_catches_what_must_not_leak(message):
    """Every error the suite sees is checked by assert_no_leak; it must be able to fail."""
    from tests.transports.clients import assert_no_leak

    with pytest.raises(AssertionError):
        assert_no_leak(message)


def test_the_leak_check_lets_real_messages_through():
    from tests.transports.clients import assert_no_leak

    for message in (
        "no such domain: nope.example.test",
        "address 10.0.0.1, which is private: not an allowed target",
        "certificate of expired.local.test does not verify: expired: certificate has expired",
        "internal error (incident 3f2a1c9b)",
    ):
        assert_no_leak(message)


# -- who may call ------------------------------------------------------------------------------
def test_tokens_decide_in_the_core_before_any_lookup(settings, tmp_path):
    from gateway.observe import Caller
    from tests.conftest import make_gateway

    (tmp_path / "tokens").write_text("ops:0123456789abcdef-core\n")
    for open_introspection in (False, True):
        gw = make_gateway(settings.replace(token_file=str(tmp_path / "tokens"), open_introspection=open_introspection))
        anonymous = Caller("test", "192.0.2.1:1")
        good = gw.identify(anonymous, "0123456789abcdef-core")
        bad = gw.identify(anonymous, "wrong-token-0123456789")
        assert good.principal == "ops" and good.identity == "token:ops" and not good.rejected
        assert bad.principal == "" and bad.rejected and bad.identity == "192.0.2.1"
        assert gw.identify(anonymous, None) == anonymous
        assert gw.call("system.listMethods", caller=good)
        for caller, message in ((anonymous, "requires a token"), (bad, "not accepted")):
            with pytest.raises(GatewayError, match=message) as caught:
                gw.call("no.such.method", caller=caller)  # unauthenticated, not method_not_found: nothing revealed
            assert caught.value.code == "unauthenticated"
            with pytest.raises(GatewayError, match="unauthenticated"):
                gw.call_many([{"methodName": "system.listMethods"}], caller=caller)
            assert (gw.refusal(caller) is None) == open_introspection
            if open_introspection:
                assert gw.call("system.listMethods", caller=caller)
        assert gw.refusal(good) is None
        gw.close()
