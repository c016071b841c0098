"""The bare libraries, serving the same trivial work as the gateway, each as its documentation shows.

    python -m gateway.bench.bare NAME PORT    (NAME: a transport, echo, or one of SERVERS' -asyncio ones)

Each answers ``system.listMethods`` (``system_listMethods``) with the same list the gateway
returns, in its best documented configuration (keep-alive on, Nagle off, a listen backlog
of 128), and prints ``ready`` once listening. ``echo`` is a raw length-prefixed TCP echo in
Python, threaded as the bare servers are: the floor no RPC library can go under; ``echo-asyncio`` is
the same on the gateway's event loop (uvloop's, through asyncio's API), the floor of any call through the gateway;
``thrift-asyncio`` and ``grpc-asyncio`` are those libraries' own services served from that loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

NAMES = [
    "dns_query", "fetch_url", "mx_lookup", "resolve", "reverse_lookup", "rpc.discover", "system.listMethods",
    "system.methodHelp", "system.methodSignature", "system.multicall", "tcp_connect", "tls_check",
]  # fmt: skip


def list_methods() -> list[str]:
    """The same list the gateway's system.listMethods returns."""
    return list(NAMES)


def xmlrpc(port: int) -> None:
    """Stdlib SimpleXMLRPCServer with ThreadingMixIn and HTTP/1.1 keep-alive."""

    class Handler(SimpleXMLRPCRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True

    class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", port), Handler, logRequests=False, allow_none=False)
    server.register_function(list_methods, "system.listMethods")
    print("ready", flush=True)
    server.serve_forever()


def jsonrpc(port: int) -> None:
    """jsonrpcserver's dispatch behind the stdlib ThreadingHTTPServer (keep-alive, Nagle off)."""
    from jsonrpcserver import Success, dispatch, method

    @method(name="system.listMethods")
    def listed() -> object:
        return Success(list_methods())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = -1

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = dispatch(body.decode()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    class Server(ThreadingHTTPServer):
        request_queue_size = 128

    server = Server(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def rpyc_server(port: int) -> None:
    """An rpyc ThreadedServer; arguments and result go by value as JSON text, as between gateway.client and
    the gateway."""
    import rpyc
    from rpyc.utils.server import ThreadedServer

    class Service(rpyc.Service):
        def exposed_system_listMethods(self) -> tuple[str, ...]:
            return tuple(list_methods())  # by value, as the gateway gives a stock client a list of strings

        def json_entry(self, name: str, params: str) -> str:
            """What gateway.client calls (``root["netops.json"]``): JSON text in, JSON text out."""
            json.loads(params)
            return json.dumps(list_methods())

    setattr(Service, "exposed_netops.json", Service.json_entry)  # the name has a dot, as in the gateway

    server = ThreadedServer(
        Service, hostname="127.0.0.1", port=port, backlog=128, protocol_config={"allow_pickle": False}
    )
    print("ready", flush=True)
    server.start()


def pyro(port: int) -> None:
    """A Pyro5 daemon (thread server, serpent) with one exposed class."""
    import Pyro5.api

    @Pyro5.api.expose
    class NetOps:
        def system_listMethods(self) -> list[str]:
            return list_methods()

    daemon = Pyro5.api.Daemon(host="127.0.0.1", port=port)
    daemon.register(NetOps, "netops")
    print("ready", flush=True)
    daemon.requestLoop()


class _ThriftHandler:
    def system_listMethods(self) -> list[str]:
        return [n.replace(".", "_") for n in list_methods()]


def _thrift_service() -> Any:
    import io

    import thriftpy2

    return thriftpy2.load_fp(io.StringIO("service NetOps { list<string> system_listMethods() }"), "bare_thrift").NetOps


def thrift(port: int) -> None:
    """thriftpy2's make_server (its Cython binary protocol and buffered transport)."""
    from thriftpy2.rpc import make_server

    # None: no client timeout (the documented default drops idle clients after 3 s); the hint says int only.
    server = make_server(_thrift_service(), _ThriftHandler(), "127.0.0.1", port, client_timeout=None)  # type: ignore[arg-type]
    server.daemon = True
    print("ready", flush=True)
    server.serve()


def thrift_asyncio(port: int) -> None:
    """The same thriftpy2 service (its processor, handler and Cython protocol) in an asyncio Protocol on the
    gateway's event loop: the library without its thread per connection. Set beside ``thrift`` and the
    gateway, it tells how much of a Thrift call's latency is the event loop's and how much the gateway's.

    A read is taken to be one whole call, as it is from the benchmark's clients (one small call at a time,
    the next only once the last is answered); a read that is not is dropped with its connection."""
    from thriftpy2.protocol import TBinaryProtocol
    from thriftpy2.thrift import TProcessor
    from thriftpy2.transport import TMemoryBuffer

    processor = TProcessor(_thrift_service(), _ThriftHandler())

    class Served(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A connection's buffers and protocols, made once (as the threaded server's transport is).
            self.inbound = TMemoryBuffer()
            self.outbound: Any = TMemoryBuffer()  # thriftpy2's Cython buffer here, which has clean()
            self.iprot, self.oprot = TBinaryProtocol(self.inbound), TBinaryProtocol(self.outbound)

        def data_received(self, data: bytes) -> None:
            self.inbound.setvalue(data)
            self.outbound.clean()
            try:
                processor.process(self.iprot, self.oprot)
            except Exception:
                self.transport.abort()
                return
            self.transport.write(self.outbound.getvalue())

    _serve_on_the_loop(Served, port)


def _grpc_service(answer: Callable[[Any, Any], Any]) -> Any:
    """The .proto's service (idl/netops.proto) with ``ListMethods`` answered by ``answer(response, names)``."""
    import grpc
    from google.protobuf.message_factory import GetMessageClass

    from gateway.proto import PACKAGE, SERVICE, default_pool

    pool, _ = default_pool()
    request = GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.ListMethodsRequest"))
    response = GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.ListMethodsResponse"))
    names = [n.replace(".", "_") for n in list_methods() if n != "rpc.discover"]
    handler = grpc.unary_unary_rpc_method_handler(
        answer(response, names), request_deserializer=request.FromString, response_serializer=response.SerializeToString
    )
    return grpc.method_handlers_generic_handler(f"{PACKAGE}.{SERVICE}", {"ListMethods": handler})


def grpc_server(port: int) -> None:
    """A plain grpcio server of the same .proto (idl/netops.proto), as grpc.io's examples start one."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=10))
    server.add_generic_rpc_handlers([_grpc_service(lambda response, names: lambda _r, _c: response(methods=names))])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def grpc_asyncio(port: int) -> None:
    """The same service on grpcio's asyncio server, on the event loop the gateway runs it on: set beside
    ``grpc`` and the gateway, it tells the asyncio server's share of a gRPC call's latency from the gateway's."""
    import grpc

    def answer(response: Any, names: list[str]) -> Any:
        async def list_methods_call(_request: Any, _context: Any) -> Any:
            return response(methods=names)

        return list_methods_call

    async def serve() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([_grpc_service(answer)])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    from gateway.eventloop import new_event_loop

    new_event_loop().run_until_complete(serve())


def mcp_server(port: int) -> None:
    """A minimal server built with the official MCP SDK (MCPServer, Streamable HTTP, JSON answers)."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bare")

    @server.tool(name="system_listMethods")
    def system_list_methods() -> list[str]:
        """List the names of every method."""
        return [n.replace(".", "_") for n in list_methods() if n != "rpc.discover"]

    print("ready", flush=True)
    server.run("streamable-http", host="127.0.0.1", port=port, json_response=True)


def echo(port: int) -> None:
    """A raw length-prefixed TCP echo: the floor."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = sock.makefile("rb")
            while True:
                head = reader.read(4)
                if len(head) < 4:
                    return
                body = reader.read(struct.unpack("!I", head)[0])
                sock.sendall(head + body)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    server = Server(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


def echo_asyncio(port: int) -> None:
    """The same echo as an asyncio Protocol (Nagle off) on the event loop the gateway runs on: the floor of any
    call through the gateway, as ``echo`` is that of a threaded server."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while len(self.buffer) >= 4:
                end = 4 + struct.unpack_from("!I", self.buffer)[0]
                if len(self.buffer) < end:
                    return
                self.transport.write(self.buffer[:end])
                self.buffer = self.buffer[end:]

    _serve_on_the_loop(Echo, port)


def _serve_on_the_loop(protocol: Callable[[], asyncio.Protocol], port: int) -> None:
    """Serve ``protocol`` on the event loop the gateway runs on (its own choice of loop)."""
    from gateway.eventloop import new_event_loop

    loop = new_event_loop()
    loop.run_until_complete(loop.create_server(protocol, "127.0.0.1", port, backlog=128))
    print("ready", flush=True)
    loop.run_forever()


SERVERS = {
    "xmlrpc": xmlrpc, "jsonrpc": jsonrpc, "pyro": pyro, "thrift": thrift, "rpyc": rpyc_server, "mcp": mcp_server,
    "grpc": grpc_server, "echo": echo, "echo-asyncio": echo_asyncio, "thrift-asyncio": thrift_asyncio,
    "grpc-asyncio": grpc_asyncio,
}  # fmt: skip

if __name__ == "__main__":
    threading.current_thread().name = f"bare-{sys.argv[1]}"
    SERVERS[sys.argv[1]](int(sys.argv[2]))
