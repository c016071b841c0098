"""docs/examples.md, from real calls against the test bed: ``python -m tests.examples > docs/examples.md``.

Starts the test DNS, TLS and HTTP servers and a gateway on every
transport, makes each example call through JSON-RPC and prints the result,
then the same through the ``netops`` command (with ``--url`` left out for
brevity), so the docs show real output anyone can reproduce.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from gateway import cli
from gateway.config import TRANSPORTS, Settings
from gateway.server import Running
from tests.servers import zones
from tests.servers.dns import Authority, DNSServer
from tests.servers.http import Server
from tests.servers.pki import PKI
from tests.transports.clients import RemoteError, connect

HEAD = """# Examples: every operation against the test bed

Real output, reproducible: `python -m tests.examples > docs/examples.md` starts the test suite's DNS
server (with its zones), TLS and HTTP servers and a gateway, makes each call through JSON-RPC, then the
same through `netops` (its `--url` left out for brevity). Every field is described in
[operations.md](operations.md). Back to the [README](../README.md).

## Results as JSON
"""


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
    url = f"jsonrpc://127.0.0.1:{running.port('jsonrpc')}"
    commands = [
        ["methods"],
        ["call", "resolve", "alias.example.test"],
        ["call", "reverse_lookup", "192.0.2.10"],
        ["call", "dns_query", "txt.example.test", "TXT"],
        ["call", "mx_lookup", "example.test"],
        ["call", "tls_check", "wronghost.local.test", str(https.port)],
        ["call", "fetch_url", f"https://web.local.test:{https.port}/json", "-p", "max_bytes=20"],
        ["call", "tcp_connect", "web.local.test", str(http.port)],
        ["call", "resolve", "nope.example.test"],
    ]
    try:
        print(HEAD)
        for name, args in examples:
            print(f"### `{name}({', '.join(json.dumps(a) for a in args)})`\n\n```json")
            try:
                print(json.dumps(client.call(name, *args), indent=2))
            except RemoteError as exc:
                print(json.dumps(exc.native, indent=2))
            print("```\n")
        print("## The same through `netops`\n\n```console")
        for command in commands:
            print("$ netops " + " ".join(command))
            out, err = io.StringIO(), io.StringIO()
            status = cli.main([command[0], "--url", url, *command[1:]], out, err)
            print((out.getvalue() + err.getvalue()).rstrip() + ("" if status == 0 else f"\n(exit {status})"))
            print()
        print("```")
    finally:
        client.close()
        running.stop()
        for server in (http, https):
            server.close()
        dns.close()


if __name__ == "__main__":
    main()
