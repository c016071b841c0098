"""Admission control on its own, with a clock the test moves (no timing)."""

from __future__ import annotations

import pytest

from gateway import GatewayError
from gateway.limits import Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admitted(admission: Admission, client: str = "192.0.2.1", **kw) -> bool:
    try:
        with admission.admit(client, outbound=kw.get("outbound", True), element=kw.get("element", False)):
            return True
    except GatewayError as exc:
        assert exc.code == "rate_limited"
        return False


def test_token_bucket_allows_the_burst_then_the_rate():
    clock = Clock()
    admission = Admission(rate=2, burst=4, clock=clock)
    assert [admitted(admission) for _ in range(5)] == [True, True, True, True, False]
    clock.now += 0.5  # one token back
    assert [admitted(admission) for _ in range(2)] == [True, False]
    clock.now += 10  # refills up to the burst, no further
    assert [admitted(admission) for _ in range(5)] == [True, True, True, True, False]


def test_clients_have_their_own_buckets():
    admission = Admission(rate=1, burst=1, clock=Clock())
    assert admitted(admission, "192.0.2.1") and not admitted(admission, "192.0.2.1")
    assert admitted(admission, "192.0.2.2")


def test_calls_in_flight_per_client_and_release():
    admission = Admission(per_client=1)
    with admission.admit("192.0.2.1", outbound=True):
        assert not admitted(admission, "192.0.2.1")
        assert admitted(admission, "192.0.2.2")
        assert admitted(admission, "192.0.2.1", element=True)  # the multicall holds the slot for its elements
    assert admitted(admission, "192.0.2.1")


def test_outbound_cap_across_clients_ignores_introspection():
    admission = Admission(outbound=1)
    with admission.admit("192.0.2.1", outbound=True):
        assert not admitted(admission, "192.0.2.2", outbound=True)
        assert admitted(admission, "192.0.2.2", outbound=False)
    assert admitted(admission, "192.0.2.2", outbound=True)


def test_everything_off_by_default():
    admission = Admission()
    assert all(admitted(admission) for _ in range(1000))


def test_a_failing_call_releases_its_place():
    admission = Admission(per_client=1, outbound=1)
    with pytest.raises(RuntimeError):
        with admission.admit("192.0.2.1", outbound=True):
            raise RuntimeError("the operation failed")
    assert admitted(admission, "192.0.2.1")


def test_result_budget_holds_until_the_outer_scope_ends_and_refuses_beyond_it():
    import threading as _threading

    from gateway.errors import GatewayError as _Error
    from gateway.limits import ResultBudget

    budget = ResultBudget(100)
    with budget.scope():  # the connection layer's, around one request
        with budget.scope():  # the operation's own: defers to the outer one
            budget.hold(60).resize(40)  # held at the cap, then what was kept
        assert budget.held == 40  # the operation has returned; its result is not yet encoded
        outer = ResultBudget.current()

        def element() -> None:  # a multicall element on another thread
            with ResultBudget.joined(outer), budget.scope():
                budget.hold(50)

        thread = _threading.Thread(target=element)
        thread.start()
        thread.join()
        assert budget.held == 90
        try:
            budget.hold(20)
        except _Error as exc:
            assert exc.code == "rate_limited"
        else:
            raise AssertionError("went over the budget")
    assert budget.held == 0
    with budget.scope():
        budget.hold(500)  # alone, a hold larger than the budget still runs: nothing else is held
    assert budget.held == 0
