"""Print the README's example calls, run against the test bed: ``python -m tests.examples``.

Starts the test DNS, TLS and HTTP servers and a gateway on all five
transports, makes each example call through JSON-RPC and prints the result,
so the README shows real output anyone can reproduce.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gateway.config import TRANSPORTS, Settings
from gateway.server import Running
from tests.servers import zones
from tests.servers.dns import Authority, DNSServer
from tests.servers.http import Server
from tests.servers.pki import PKI
from tests.transports.clients import RemoteError, connect


def main() -> None:
    dns = DNSServer(Authority(zones.zones(), zones.SLOW, zones.BLACKHOLES, zones.REBINDING))
    pki = PKI(Path(tempfile.mkdtemp()))
    http, https = Server(), Server(tls=pki.server_context())
    settings = Settings(
        nameservers=(dns.address,),
        ca_file=str(pki.ca_file),
        allow_targets=("127.0.0.0/8",),
        **{f"{name}_port": 0 for name in TRANSPORTS},
    )
    running = Running(settings)
    running.start()
    client = connect(running, "jsonrpc")
    examples = [
        ("resolve", ["alias.example.test"]),
        ("reverse_lookup", ["192.0.2.10"]),
        ("dns_query", ["example.test", "MX"]),
        ("mx_lookup", ["example.test"]),
        ("mx_lookup", ["nullmx.example.test"]),
        ("tls_check", ["expired.local.test", https.port]),
        ("fetch_url", [f"http://web.local.test:{http.port}/redirect/1"]),
        ("tcp_connect", ["web.local.test", 1]),
        ("resolve", ["nope.example.test"]),
    ]
    try:
        for name, args in examples:
            print(f"### {name}({', '.join(json.dumps(a) for a in args)})")
            try:
                print(json.dumps(client.call(name, *args), indent=2))
            except RemoteError as exc:
                print(json.dumps(exc.native, indent=2))
            print()
    finally:
        client.close()
        running.stop()
        for server in (http, https):
            server.close()
        dns.close()


if __name__ == "__main__":
    main()
