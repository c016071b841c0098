"""The benchmark's own code: it counts calls and errors right and writes its reports. No timing thresholds."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from gateway.bench import instructions
from gateway.bench import main as bench_main
from gateway.bench.engine import (
    BLOCK,
    Sample,
    Scheduling,
    Stats,
    call_factory,
    cpu_by_kind,
    latencies,
    latency,
    median_latency_round,
    median_round,
    start_bare,
    throughput,
)
from gateway.bench.report import judged_ratio, markdown, round_ratios, table, targets, write_reports

ROOT = Path(__file__).resolve().parents[1]


def test_latency_counts_calls_and_errors():
    count = {"n": 0}

    def flaky() -> None:
        count["n"] += 1
        if count["n"] % 3 == 0:
            raise OSError("every third call fails")

    stats = latency(None, flaky, 30, warmup=0)
    assert (stats.calls, stats.errors, len(stats.samples_us)) == (20, 10, 30)
    assert stats.p50_us >= 0 and stats.p99_us >= stats.p50_us


def test_the_two_sides_of_a_latency_comparison_take_turns_every_block_of_calls():
    """Sequential calls to the gateway and the bare library alternate every BLOCK calls, who goes first
    alternating, so a slow spell of the machine falls on both; each side has its own stats."""
    order: list[str] = []

    def side(name: str):
        def call() -> None:
            order.append(name)
            if name == "bare" and len(order) % 7 == 0:
                raise OSError("now and then")

        return call

    runs = latencies({"gateway": (None, side("gateway")), "bare": (None, side("bare"))}, 6 * BLOCK, warmup=0)
    turns = [order[at : at + BLOCK] for at in range(0, len(order), BLOCK)]
    assert len(turns) == 12 and all(len(set(turn)) == 1 for turn in turns)  # whole turns of one side
    assert [turn[0] for turn in turns] == ["gateway", "bare", "bare", "gateway"] * 3
    assert all(r.calls + r.errors == len(r.samples_us) == 6 * BLOCK for r in runs.values())
    assert runs["gateway"].errors == 0
    assert runs["bare"].errors == sum(1 for at, n in enumerate(order, 1) if n == "bare" and at % 7 == 0)


def test_stats_arithmetic():
    stats = Stats(calls=200, errors=1, seconds=2.0, server_cpu=0.1, samples_us=[1.0, 2.0, 3.0])
    assert stats.rate == 100.0 and stats.cpu_per_call_us == 500.0 and stats.p50_us == 2.0


def test_rounds_are_judged_by_their_median_round_of_latency_and_of_throughput():
    slow = Stats(calls=3000, errors=0, seconds=1.0, server_cpu=0.9, samples_us=[100.0] * 4)
    fast = Stats(calls=7000, errors=1, seconds=1.0, server_cpu=0.7, samples_us=[30.0, 31.0])
    middle = Stats(calls=5000, errors=2, seconds=1.0, server_cpu=0.8, samples_us=[33.0, 34.0, 35.0])
    typical = median_latency_round([slow, fast, middle])
    # one slow round (one slow process) does not move it; pooled, the samples' p50 would have been 35.0
    assert typical.samples_us == [33.0, 34.0, 35.0] and typical.p50_us == 34.0 and typical.errors == 3
    assert median_latency_round([fast, slow]).p50_us == 100.0  # of two, the slower, as for throughput
    chosen = median_round([fast, slow, middle])
    assert chosen.rate == 5000 and chosen.cpu_per_call_us == 160.0  # the median round's CPU goes with it
    assert chosen.errors == 3  # every round's errors count


def test_throughput_runs_in_rounds_and_keeps_every_round(tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        status = bench_main(
            ["--transports", "thrift", "--workloads", "throughput", "--duration", "0.3", "--clients", "1",
             "--rounds", "2", "--no-profile", "--out", str(tmp_path)]
        )  # fmt: skip
    assert status == 0
    row = json.loads((tmp_path / "results.json").read_text())["transports"]["thrift"]
    for side in ("throughput", "bare_throughput"):
        rounds = row[side]["rounds"]
        assert len(rounds) == 2 and all(r["calls_per_s"] > 0 for r in rounds)
        assert row[side]["calls_per_s"] in [r["calls_per_s"] for r in rounds]  # one of the rounds, not a blend
    report = (tmp_path / "report.md").read_text()
    assert "Made with `netops bench --transports thrift --workloads throughput --duration 0.3" in report


@pytest.fixture(scope="module")
def echo():
    server = start_bare("echo")
    yield server
    server.stop()


def test_a_server_s_threads_are_told_apart_by_name(echo):
    pid = echo.proc.pid
    kinds = echo.thread_kinds()
    assert kinds[f"{pid}/{pid}"] == "main"  # named after the executable: told by being the first
    assert f"{pid}/{pid}" in echo.run_and_wait_ns()  # keyed alike: the two accounts pair up


def test_echo_floor_answers_and_cpu_is_read(echo):
    call, close = call_factory("echo", echo.ports["echo"])
    assert json.loads(call()) == ["system.listMethods", []]
    stats = latency(echo, call, 200)
    close()
    assert stats.calls == 200 and stats.errors == 0 and stats.server_cpu >= 0
    assert echo.rss_bytes() > 0 and echo.threads() >= 1


def test_sequential_calls_run_on_one_core_and_every_core_comes_back(echo):
    import os

    before = os.sched_getaffinity(0), os.sched_getaffinity(echo.proc.pid)
    seen: list[set[int]] = []
    call, close = call_factory("echo", echo.ports["echo"])

    def pinned_call() -> object:
        seen.append(os.sched_getaffinity(0) | os.sched_getaffinity(echo.proc.pid))
        return call()

    latency(echo, pinned_call, 5, warmup=0)
    close()
    assert all(len(cores) == 1 for cores in seen)
    assert (os.sched_getaffinity(0), os.sched_getaffinity(echo.proc.pid)) == before


def test_every_server_runs_in_a_session_of_its_own_and_is_stopped_by_the_bench(echo):
    # a session is the kernel's scheduling group under autogroup: the server's share of the cores is then
    # one group's against the clients', whatever the number of threads on either side
    assert os.getsid(echo.proc.pid) == echo.proc.pid != os.getsid(0)
    other = start_bare("echo-asyncio")
    assert os.getsid(other.proc.pid) not in (os.getsid(0), os.getsid(echo.proc.pid))
    other.stop()
    assert other.proc.returncode is not None  # out of our session, so ours to reap


def test_rounds_after_the_first_run_on_fresh_processes_stopped_after_them(echo):
    from gateway.bench import _round_sides

    starters = {"": functools.partial(start_bare, "echo")}
    with _round_sides({"": echo}, starters, 0) as first:
        assert first[""] is echo  # the running server
    with _round_sides({"": echo}, starters, 1) as second:
        fresh = second[""]
        assert fresh.proc.pid != echo.proc.pid and fresh.proc.poll() is None
        call, close = call_factory("echo", fresh.ports["echo"])
        assert json.loads(call()) == ["system.listMethods", []]
        close()
    assert fresh.proc.poll() is not None and echo.proc.poll() is None  # the fresh one is gone, the first stays


def test_the_report_says_how_the_cores_were_shared():
    shared = markdown({**SAMPLE, "machine": {**SAMPLE["machine"], "autogroup": True}}, None)
    assert "Each server runs in a session of its own" in shared and "autogroup is on" in shared
    assert "autogroup is off (or unknown)" in markdown({**SAMPLE, "machine": {**SAMPLE["machine"]}}, None)


def test_throughput_sums_every_client_process(echo):
    stats = throughput(echo, "echo", echo.ports["echo"], clients=2, duration=0.3)
    assert stats.calls > 0 and stats.errors == 0 and stats.seconds == 0.3


def test_throughput_reads_how_the_server_s_threads_were_scheduled(echo):
    stats = throughput(echo, "echo", echo.ports["echo"], clients=2, duration=0.5)
    sched = stats.scheduling
    assert sched is not None  # the kernel keeps schedstat on Linux
    # The echo's threads (one per client) answered thousands of calls: they ran, on at most every core.
    assert 0 < sched.running <= os.cpu_count()
    assert sched.waiting >= 0 and 0 <= sched.busiest_waiting <= 1 and 0 <= sched.idle <= 1


def test_scheduling_is_the_difference_of_two_samples_of_threads_alive_in_both():
    before = Sample(10.0, {"1/1": (1_000_000_000, 0), "1/2": (0, 0), "1/3": (5, 5)}, idle=100, total=1000)
    after = Sample(12.0, {"1/1": (2_500_000_000, 400_000_000), "1/2": (100_000_000, 0), "1/4": (9, 9)}, 300, 2000)
    # 1/3 ended and 1/4 started within the window: neither is counted
    assert Scheduling.between(before, after) == Scheduling(running=0.8, waiting=0.2, busiest_waiting=0.2, idle=0.2)
    assert Scheduling.between(before, Sample(12.0, {}, 300, 2000)) is None  # no account: no figure made up


def test_throughput_counts_clients_that_cannot_connect(closed_port):
    stats = throughput(None, "jsonrpc", closed_port, clients=2, duration=0.2)
    assert stats.calls == 0 and stats.errors > 0


SAMPLE = {
    "machine": {"cpu": "test cpu", "cores": 2, "python": "3.11", "system": "Linux", "gateway": "0"},
    "when": "2026-11-21T00:00:00Z",
    "options": {"calls": 10, "clients": 2, "duration": 1.0},
    "at_rest": {"rss_mb": 60.0, "threads": 11},
    "transports": {
        "xmlrpc": {
            "latency": {"p50_us": 100.0, "server_cpu_per_call_us": 40.0, "errors": 0},
            "bare_latency": {"p50_us": 200.0, "server_cpu_per_call_us": 90.0},
            "throughput": {"calls_per_s": 1000.0, "server_cpu_per_call_us": 40.0, "errors": 0},
            "bare_throughput": {"calls_per_s": 500.0, "server_cpu_per_call_us": 90.0, "errors": 0},
            "network": {"sequential_s": 10.0, "concurrent_s": 2.0, "multicall_s": 0.6, "multicall_errors": 0},
            "memory": {"calls": 4, "body_mb": 10.0, "per_call_mb": 21.5, "errors": 0},
        }
    },
    "load": {"connections": 200, "calls": {"xmlrpc": 10}, "errors": {"xmlrpc": 0}, "seconds": 1.0,
             "peak_threads": 50, "peak_rss_mb": 70.0, "after": {"threads": 12, "rss_mb": 65.0}},
}  # fmt: skip


def test_targets_say_which_are_met_and_by_how_much():
    found = {what: (met, figure) for what, met, figure in targets(SAMPLE)}
    assert found["xmlrpc: p50 latency <= 0.8x bare"] == (True, "0.50x (100 vs 200 us)")
    assert found["xmlrpc: server CPU per call <= 0.5x bare"] == (True, "0.44x (40 vs 90 us)")
    assert found["xmlrpc: throughput >= bare"] == (True, "2.00x (1000 vs 500 calls/s)")
    assert found["xmlrpc: multicall of 100 slow mx_lookups < 0.35 s"] == (False, "0.60 s")
    assert found["resident memory at rest < 80 MB"][0] is True
    assert found["xmlrpc: peak RSS per concurrent 10 MiB fetch_url <= 20 MiB"] == (
        False,
        "21.5 MiB per call in flight (4 at once, 0 errors)",
    )
    assert found["200 concurrent connections: no errors, every transport answers"][0] is True


def test_targets_show_how_far_the_ratio_moved_from_round_to_round():
    def rounds(*pairs: tuple[float, float]) -> list[dict[str, float]]:
        return [{"calls_per_s": rate, "server_cpu_per_call_us": cpu} for rate, cpu in pairs]

    row = {
        "latency": {"p50_us": 110.0, "rounds": [{"p50_us": 100.0}, {"p50_us": 120.0}]},
        "bare_latency": {"p50_us": 100.0, "rounds": [{"p50_us": 100.0}, {"p50_us": 80.0}]},
        "throughput": {"calls_per_s": 900.0, "server_cpu_per_call_us": 50.0, "rounds": rounds((900, 50), (800, 60))},
        "bare_throughput": {
            "calls_per_s": 1000.0, "server_cpu_per_call_us": 50.0, "rounds": rounds((1000, 40), (1000, 50))},
    }  # fmt: skip
    found = {what: (met, figure) for what, met, figure in targets({"transports": {"rpyc": row}})}
    # Of two rounds' ratios, the worse is judged; the figures in brackets are each side's median round.
    assert found["rpyc: p50 latency <= 1.1x bare"] == (False, "1.50x (110 vs 100 us); by round 1.00-1.50x")
    assert found["rpyc: server CPU per call <= 1.0x bare"] == (False, "1.25x (50 vs 50 us); by round 1.20-1.25x")
    assert found["rpyc: throughput >= bare"] == (False, "0.80x (900 vs 1000 calls/s); by round 0.80-0.90x")


def test_a_ratio_is_judged_on_its_rounds_paired_not_on_each_sides_median_round():
    # The machine's speed moves from round to round (xmlrpc in one run); within a round both sides saw the
    # same machine. Each side's median round is another round (gateway: the fourth, bare: the second), and
    # their ratio, 0.82x, would miss a target that four rounds' pairs out of five meet by a margin.
    latency = {"p50_us": 516.3, "rounds": [{"p50_us": p} for p in (361.0, 474.1, 588.3, 516.3, 523.8)]}
    bare = {"p50_us": 629.9, "rounds": [{"p50_us": p} for p in (473.6, 629.9, 772.9, 629.8, 693.7)]}
    assert [round(r, 2) for r in round_ratios(latency, bare, "p50_us")] == [0.76, 0.75, 0.76, 0.82, 0.76]
    found = {what: (met, figure) for what, met, figure in targets({"transports": {"xmlrpc": {
        "latency": latency, "bare_latency": bare}}})}  # fmt: skip
    assert found["xmlrpc: p50 latency <= 0.8x bare"] == (True, "0.76x (516 vs 630 us); by round 0.75-0.82x")
    # Throughput: higher is better, so of the middle ones the lower; a run without rounds: the plain ratio.
    faster = {"calls_per_s": 1.0, "rounds": [{"calls_per_s": c} for c in (110.0, 90.0, 300.0, 200.0)]}
    slower = {"calls_per_s": 1.0, "rounds": [{"calls_per_s": c} for c in (100.0, 100.0, 200.0, 100.0)]}
    assert judged_ratio(faster, slower, "calls_per_s", higher_is_worse=False) == 1.1
    assert judged_ratio({"p50_us": 33.0}, {"p50_us": 30.0}, "p50_us") == 1.1


def test_a_ratio_that_would_read_as_its_limit_shows_a_third_place():
    row = {"latency": {"p50_us": 110.1}, "bare_latency": {"p50_us": 100.0}}
    ((_, met, figure),) = [t for t in targets({"transports": {"thrift": row}}) if "p50" in t[0]]
    assert not met and figure.startswith("1.101x (110 vs 100 us)")
    row["latency"]["p50_us"] = 110.0
    ((_, met, figure),) = [t for t in targets({"transports": {"thrift": row}}) if "p50" in t[0]]
    assert met and figure.startswith("1.10x")


def test_a_p50_miss_comes_with_the_floors_and_the_instructions_above_them():
    row = {"latency": {"p50_us": 40.0}, "bare_latency": {"p50_us": 32.0}}
    result = {
        "transports": {"thrift": row},
        "echo": {"latency": {"p50_us": 11.0}},
        "echo_asyncio": {"latency": {"p50_us": 15.0}},
        "instructions": {"transports": {"thrift": {"gateway": 64_100, "bare": 55_700}}, "echo": 11_500,
                         "echo_asyncio": 7_000},
    }  # fmt: skip
    found = {what: (met, figure) for what, met, figure in targets(result)}
    assert found["thrift: p50 latency <= 1.1x bare"] == (
        False,
        "1.25x (40 vs 32 us); the floors: a raw echo answers in 15.0 us on the gateway's event loop, 11.0 us on a "
        "thread per connection (+4.0 us before any work); above them, 57.1K instructions a call against the bare "
        "library's 44.2K",
    )
    met = {**result, "transports": {"thrift": {**row, "latency": {"p50_us": 33.0}}}}
    assert [figure for what, _, figure in targets(met) if "p50" in what] == ["1.03x (33 vs 32 us)"]  # met: no more
    alone = {"transports": {"thrift": row}}  # nothing else measured: nothing else said
    assert [figure for what, _, figure in targets(alone) if "p50" in what] == ["1.25x (40 vs 32 us)"]


def test_a_p50_miss_tells_the_event_loop_s_share_from_the_gateway_s():
    # The library's own service on the gateway's loop, measured in the same turns as both sides.
    row = {"latency": {"p50_us": 40.0}, "bare_latency": {"p50_us": 32.0}, "loop_latency": {"p50_us": 38.0}}
    (figure,) = [figure for what, _, figure in targets({"transports": {"thrift": row}}) if "p50" in what]
    assert figure == (
        "1.25x (40 vs 32 us); the bare library's own service on the gateway's event loop answers in 38 us "
        "(1.19x its threaded server): that is the event loop's share; the gateway above it is 1.05x"
    )


def test_a_throughput_miss_comes_with_the_scheduler_s_account_in_its_figure_and_section():
    def sched(running: float, waiting: float, busiest: float, idle: float) -> dict[str, float]:
        return {"running": running, "waiting": waiting, "busiest_waiting": busiest, "idle": idle}

    row = {
        "throughput": {
            "calls_per_s": 800.0, "server_cpu_per_call_us": 50.0, "scheduling": sched(0.57, 0.41, 0.41, 0.12)},
        "bare_throughput": {
            "calls_per_s": 1000.0, "server_cpu_per_call_us": 50.0, "scheduling": sched(0.54, 2.17, 0.29, 0.01)},
    }  # fmt: skip
    met = {**row, "throughput": {**row["throughput"], "calls_per_s": 1200.0}}
    result = {**SAMPLE, "transports": {"thrift": row, "rpyc": met}, "echo_asyncio": {"throughput": {}}}
    found = {what: figure for what, _, figure in targets(result)}
    assert found["thrift: throughput >= bare"] == (
        "0.80x (800 vs 1000 calls/s); the server's busiest thread waited for a core 41% of the run (bare 29%) "
        "while the CPU was 12% idle (bare 1%)"
    )
    assert found["rpyc: throughput >= bare"] == "1.20x (1200 vs 1000 calls/s)"  # met: nothing to explain
    report = markdown(result, None)
    assert "## Where a throughput run's time goes: the scheduler" in report
    assert "| thrift | 0.57 | 0.41 | 41% | 0.54 | 2.17 | 29% | 12% (1%) |" in report
    assert "aio echo |" not in report.split("the scheduler", 1)[1]  # not measured: no row
    assert "time goes: the scheduler" not in markdown(SAMPLE, None)  # no account at all: no section


def test_reports_are_written(tmp_path):
    written = write_reports(SAMPLE, tmp_path / "out")
    names = {p.name for p in written}
    assert {"results.json", "report.md"} <= names
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == SAMPLE
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| xmlrpc: multicall of 100 slow mx_lookups < 0.35 s | **no** | 0.60 s |" in report
    if "chart.png" in names:
        assert (tmp_path / "out" / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "xmlrpc" in table(SAMPLE) and markdown(SAMPLE, None).startswith("# NetOps Gateway")


def test_a_tiny_run_end_to_end():
    out = io.StringIO()
    with redirect_stdout(out):
        status = bench_main(["--quick", "--transports", "jsonrpc", "--workloads", "latency", "--calls", "30"])
    assert status == 0
    row = out.getvalue().splitlines()[2].split()
    assert row[0] == "jsonrpc" and float(row[1]) > 0 and float(row[2]) > 0  # gateway and bare p50 measured


def test_a_run_writes_files_only_when_given_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default used to write: bench/results of the working directory
    with redirect_stdout(io.StringIO()):
        status = bench_main(["--transports", "jsonrpc", "--workloads", "latency", "--calls", "30", "--rounds", "1",
                             "--no-profile"])  # fmt: skip
    assert status == 0 and list(tmp_path.iterdir()) == []
    with redirect_stdout(io.StringIO()):
        status = bench_main(["--quick", "--transports", "jsonrpc", "--workloads", "latency", "--calls", "30",
                             "--out", "here"])  # fmt: skip
    assert status == 0 and {p.name for p in (tmp_path / "here").iterdir()} >= {"report.md", "results.json"}
    assert "Made with `netops bench --quick --transports jsonrpc" in (tmp_path / "here" / "report.md").read_text()


def test_quick_mode_prints_only_what_it_measured(tmp_path):
    out = io.StringIO()
    with redirect_stdout(out):
        status = bench_main(["--quick", "--transports", "thrift", "--workloads", "latency,network", "--calls", "30",
                             "--out", str(tmp_path)])  # fmt: skip
    assert status == 0
    thrift = json.loads((tmp_path / "results.json").read_text())["transports"]["thrift"]
    assert thrift["loop_latency"]["p50_us"] > 0  # the library on the gateway's loop answered, in the same turns
    assert "loop_throughput" not in thrift  # measured for latency only
    lines = out.getvalue().splitlines()
    row = next(line for line in lines if line.startswith("thrift ")).split()
    assert all(float(figure) > 0 for figure in row[1:3])  # p50, gateway and bare: measured
    assert row[4:] == ["-"] * 6  # no throughput run: no CPU per call, calls/s or errors, and no 0 for them
    header = next(line for line in lines if line.startswith("100 mx_lookups"))
    # the sequential and concurrent parts are not run
    assert header.endswith("seconds (one multicall / its DNS queries through dnspython alone)")
    figures = lines[lines.index(header) + 1].split()
    assert figures[0] == "thrift" and len(figures) == 4 and float(figures[1]) > 0 and float(figures[3]) > 0
    network = thrift["network"]  # what a multicall miss would be told with: measured in the same multicall
    assert network["multicall_cpu_s"] > 0 and network["multicall_queries"] >= 300  # MX, A and AAAA each
    assert network["alone_multicall_s"] > 0 and network["alone_multicall_cpu_s"] > 0  # the floor, no gateway
    assert network["alone_multicall_queries"] == network["multicall_queries"]  # the same work as the multicall's
    by_thread = network["multicall_cpu_by_thread"]  # the gateway's CPU in it, by the names its threads show
    assert by_thread["dns"]["threads"] == 1 and "multicall" not in by_thread  # lookups run on the DNS loop only
    total = sum(kind["cpu_s"] for kind in by_thread.values())  # the threads' account agrees with the process's
    assert abs(total - network["multicall_cpu_s"]) <= network["multicall_cpu_s"] / 4 + 0.02


def test_cpu_by_kind_of_thread_is_the_difference_of_two_accounts():
    before = {"1/1": (1_000_000_000, 0), "1/2": (0, 0), "1/3": (5_000_000, 0), "1/9": (0, 0)}
    after = {"1/1": (1_500_000_000, 9), "1/2": (100_000_000, 0), "1/3": (45_000_000, 0), "1/4": (60_000_000, 0),
             "1/9": (0, 0)}  # fmt: skip
    kinds = {"1/1": "dns", "1/2": "multicall", "1/3": "multicall", "1/4": "multicall", "1/9": "call"}
    # 1/4 started meanwhile: all it ran counts; 1/9 did not run: not listed; per round of 2; busiest first
    assert cpu_by_kind(before, after, kinds, 2) == {
        "dns": {"cpu_s": 0.25, "threads": 1},
        "multicall": {"cpu_s": 0.1, "threads": 3},
    }


def test_unknown_workload_is_a_usage_error(capsys):
    assert bench_main(["--workloads", "nope"]) == 64
    assert "unknown transport or workload 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--rounds=0", "--calls=0", "--clients=0", "--duration=0"])
def test_counts_below_one_are_a_usage_error(capsys, flag):
    assert bench_main(["--quick", flag]) == 64
    assert "must be above 0" in capsys.readouterr().err


def test_bench_script_in_the_repository_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: netops bench")


def test_a_miss_in_a_run_without_profiles_says_it_was_not_profiled():
    row = {**SAMPLE["transports"]["xmlrpc"], "throughput": {"calls_per_s": 400.0, "server_cpu_per_call_us": 40.0}}
    result = {**SAMPLE, "transports": {"xmlrpc": row}}  # throughput 0.80x: missed
    unprofiled = {**result, "options": {**SAMPLE["options"], "profile": False}}
    assert "Not profiled: xmlrpc. This run did not profile its servers" in markdown(unprofiled, None)
    assert "Not profiled" not in markdown(result, None)  # an older result: it says nothing it does not know
    met = {**unprofiled, "transports": SAMPLE["transports"]}  # nothing missed against the bare library
    assert "Not profiled" not in markdown(met, None)


def test_a_profile_summary_groups_the_gateway_s_time_by_layer(tmp_path):
    from gateway.bench.profile import Profile

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "thread (1): netops-io;run (asyncio/base_events.py:1);write (asyncio/selector_events.py:2) 6\n"
        "thread (1): netops-io;run (asyncio/base_events.py:1);handle (gateway/transports/thrift.py:3) 3\n"
        "thread (2): call-0;_run (gateway/net/workers.py:4);call (gateway/core.py:5) 1\n"
        "thread (3): call-1;Workers._run (gateway/net/workers.py:57) 90\n"  # a worker waiting for work: idle
    )
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    summary = Profile(done, raw).summary()
    assert summary["samples"] == 10
    assert summary["self"][0] == ("write (asyncio/selector_events.py)", 60.0)
    assert summary["groups"] == {
        "event loop and connection layer": 60.0, "codec (ours)": 30.0, "core: authorisation, limits, metrics": 10.0
    }  # fmt: skip


def test_the_multicall_target_shows_every_round_and_fails_on_errors():
    network = {"multicall_s": 0.3, "multicall_rounds_s": [0.28, 0.3, 0.41], "multicall_errors": 0}
    result = {"transports": {"thrift": {"network": network}}}
    ((_, met, figure),) = [t for t in targets(result) if "multicall" in t[0]]
    assert met and figure == "0.30 s (median of 0.28, 0.30, 0.41)"
    network["multicall_errors"] = 2
    ((_, met, figure),) = [t for t in targets(result) if "multicall" in t[0]]
    assert not met and figure.endswith("2 elements failed")


def test_a_multicall_miss_says_how_much_cpu_the_gateway_spent_on_its_dns_queries():
    network = {"multicall_s": 0.4, "multicall_rounds_s": [0.4], "multicall_cpu_s": 0.279, "multicall_queries": 300}
    result = {"machine": {"cores": 2}, "transports": {"xmlrpc": {"network": network}}}
    ((_, met, figure),) = [t for t in targets(result) if "multicall" in t[0]]
    assert not met and figure == (
        "0.40 s; the gateway's CPU: 0.28 s a multicall on 2 cores, 0.93 ms for each of its 300 DNS queries; "
        "the answers themselves take 0.10 s (an MX, then A and AAAA at once)"
    )
    network.update(alone_multicall_s=0.33, alone_multicall_rounds_s=[0.33], alone_multicall_cpu_s=0.231)
    ((_, met, figure),) = [t for t in targets(result) if "multicall" in t[0]]
    assert figure.endswith(  # the floor the multicall stands on, measured: the library's own share of the miss
        "; dnspython alone sends and reads the same queries on one event loop in 0.33 s (0.23 s of CPU); "
        "the gateway above it: +0.07 s"
    )
    by_thread = {"dns": {"cpu_s": 0.2, "threads": 1}, "multicall": {"cpu_s": 0.07, "threads": 100}}
    network["multicall_cpu_by_thread"] = by_thread
    ((_, met, figure),) = [t for t in targets(result) if "multicall" in t[0]]
    assert figure.endswith(  # where the gateway's own time goes, thread by thread
        "; the gateway's CPU by thread: the DNS queries' event loop 0.200 s, "
        "the multicall's element threads 0.070 s (100 threads)"
    )
    network["multicall_s"] = 0.3  # met: no more said
    assert [figure for what, _, figure in targets(result) if "multicall" in what] == ["0.30 s"]


def test_instruction_counts_sit_beside_the_cpu_target_and_in_their_own_section():
    row = {
        "throughput": {"calls_per_s": 900.0, "server_cpu_per_call_us": 60.0},
        "bare_throughput": {"calls_per_s": 1000.0, "server_cpu_per_call_us": 50.0},
    }
    counted = {
        "calls": 300,
        "transports": {"thrift": {"gateway": 120_000, "bare": 60_000}, "mcp": {"gateway": 90_000}},
        "echo": 11_800,
        "echo_asyncio": 26_000,
    }
    result = {**SAMPLE, "transports": {"thrift": row}, "instructions": counted}
    found = {what: figure for what, _, figure in targets(result)}
    assert (
        found["thrift: server CPU per call <= 1.0x bare"]
        == "1.20x (60 vs 50 us); in instructions 2.00x (120.0K vs 60.0K)"
    )
    lines = table(result).splitlines()
    assert lines[lines.index("instructions per call (callgrind, every thread, user space; 300 calls)") + 2 :][:4] == [
        "thrift      120.0K    60.0K  2.00x",
        "mcp          90.0K        -      -",  # no bare library: no ratio made up
        "tcp echo     11.8K",
        "aio echo     26.0K",
    ]
    report = markdown(result, None)
    assert "| thrift | 120.0K | 60.0K | 2.00x |" in report and "| aio echo | 26.0K | | |" in report


def test_instruction_counts_left_out_say_why():
    result = {**SAMPLE, "instructions": {"skipped": "valgrind is not installed"}}
    assert "instructions per call: not measured (valgrind is not installed)" in table(result)
    assert "Not measured: valgrind is not installed." in markdown(result, None)


@pytest.mark.skipif(not instructions.available(), reason="valgrind is not installed (scripts/setup-tools)")
def test_an_instruction_count_is_the_same_from_one_run_to_the_next():
    first = instructions.count(functools.partial(start_bare, "thrift"), "thrift", calls=100)
    second = instructions.count(functools.partial(start_bare, "thrift"), "thrift", calls=100)
    floor = instructions.count(functools.partial(start_bare, "echo-asyncio"), "echo-asyncio", calls=100)
    assert first > 1000 and abs(first - second) / first < 0.02  # a count, not a time: this machine's noise stays out
    assert 0 < floor < first  # a bare echo on the loop does less than a library decoding, calling and encoding


def test_the_slow_dns_fixture_answers_a_query_asked_again_under_its_own_id():
    import contextlib
    import socket as sockets

    import dns.message
    import dns.rdatatype

    from gateway.bench.fixtures import SlowDNS

    server = SlowDNS(0.0)
    host, port = server.address.split(":")
    with contextlib.closing(server), sockets.socket(sockets.AF_INET, sockets.SOCK_DGRAM) as sock:
        sock.settimeout(5)

        def ask(name: str, rdtype: str, ident: int) -> dns.message.Message:
            query = dns.message.make_query(name, rdtype)
            query.id = ident
            sock.sendto(query.to_wire(), (host, int(port)))
            return dns.message.from_wire(sock.recv(65535))

        first = ask("a.bench.test", "MX", 1)
        again = ask("a.bench.test", "MX", 2)  # the same question: the answer made for the first
        other = ask("a.bench.test", "A", 2)
    assert (first.id, again.id, other.id) == (1, 2, 2)
    assert again.answer == first.answer and again.answer[0].rdtype == dns.rdatatype.MX
    assert other.answer[0].rdtype == dns.rdatatype.A and other.answer[0][0].address == "127.0.0.1"
