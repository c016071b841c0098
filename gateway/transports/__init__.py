"""The transports: one codec module each over the connection layer (:mod:`gateway.net`), listed in :mod:`.table`."""

from __future__ import annotations

from gateway.transports.table import TABLE, TRANSPORTS, client_class, codec_class, row

__all__ = ["TABLE", "TRANSPORTS", "client_class", "codec_class", "row"]
