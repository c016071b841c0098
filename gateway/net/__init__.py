"""The connection layer: the one place the gateway's bytes come in and go out.

One asyncio event loop, on one thread, accepts every connection of every
transport, runs its TLS handshake, reads its optional token line, and feeds
its bytes to the transport's :class:`~gateway.net.session.Session`, a codec
with no I/O of its own that frames complete, size-checked requests.  Each
complete request runs on a fixed pool of worker threads
(:mod:`gateway.net.workers`); the answer goes back through the loop.  So
threads never grow with connections, nothing but a bounded read happens
before a caller is authenticated, and caps (connections in all and per
client, request size, idle and slow-sender deadlines) are applied in one place.

    accept -> connection caps -> TLS -> token line -> Session.receive (frame, bound)
           -> worker: Session.handle (decode -> core -> encode) -> write
"""

from gateway.net.layer import ConnectionLayer, Listener
from gateway.net.session import Codec, Link, Refuse, Session

__all__ = ["Codec", "ConnectionLayer", "Link", "Listener", "Refuse", "Session"]
