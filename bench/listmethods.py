"""Time N sequential system.listMethods calls on each transport of a running gateway.

    python bench/listmethods.py [--calls 1000] [--host 127.0.0.1]

Uses each transport's standard client on one persistent connection, after a
warm-up, with the default ports of ``python server.py``. Prints the total and
the median and p99 per call; RPyC is shown both as a stock client (the result
is a read-only view; reading it all costs round trips) and with ValuesService
(the result arrives as one JSON string).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

import Pyro5.api
import rpyc
import thriftpy2
from thriftpy2.rpc import make_client

from gateway.transports.rpyc import ValuesService

IDL = Path(__file__).resolve().parents[1] / "idl" / "netops.thrift"


def callers(host: str) -> dict[str, Callable[[], object]]:
    xml = xmlrpc.client.ServerProxy(f"http://{host}:7001/RPC2")
    conn = http.client.HTTPConnection(host, 7002)
    body = json.dumps({"jsonrpc": "2.0", "method": "system.listMethods", "id": 1}).encode()

    def jsonrpc() -> object:
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())["result"]

    pyro = Pyro5.api.Proxy(f"PYRO:netops@{host}:7003")
    thrift = make_client(thriftpy2.load(str(IDL), module_name="bench_thrift").NetOps, host, 7004)
    stock = rpyc.connect(host, 18861).root.system_listMethods  # looked up once: one round trip per call
    values = rpyc.connect(host, 18861, service=ValuesService).root.system_listMethods
    return {
        "xmlrpc": xml.system.listMethods,
        "jsonrpc": jsonrpc,
        "pyro": pyro.system_listMethods,
        "thrift": thrift.system_listMethods,
        "rpyc (stock, list(r))": lambda: list(stock()),
        "rpyc (ValuesService)": lambda: json.loads(values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    print(f"{'transport':<24} {'total s':>8} {'median us':>10} {'p99 us':>8}")
    for name, call in callers(args.host).items():
        for _ in range(50):
            call()
        samples = []
        began = time.perf_counter()
        for _ in range(args.calls):
            t = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t) * 1e6)
        total = time.perf_counter() - began
        p99 = statistics.quantiles(samples, n=100)[98]
        print(f"{name:<24} {total:>8.3f} {statistics.median(samples):>10.0f} {p99:>8.0f}")


if __name__ == "__main__":
    main()
