"""One access-log line per call, as readable text or as one JSON object per line.

Lines name the transport, the method, the client's address (and the name of
its token), the duration and the outcome; never arguments, bodies or
credentials. Calls refused for who the caller is (no token, over a limit)
are warnings.
"""

from __future__ import annotations

import json
import logging
import time

from gateway.errors import RATE_LIMITED, UNAUTHENTICATED
from gateway.observe import Caller

__all__ = ["AccessLog", "JSONFormatter", "configure_logging"]

log = logging.getLogger("gateway.access")


class AccessLog:
    """An observer writing the access log."""

    def started(self, caller: Caller, method: str) -> None:
        """Nothing to log yet."""

    def finished(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Log the finished call."""
        fields = {
            "transport": caller.transport,
            "method": method,
            "client": caller.client,
            "principal": caller.principal,
            "duration_ms": round(seconds * 1000, 3),
            "outcome": outcome,
        }
        # A call refused for its caller (no token, limits) is a warning: who, what and why in one line.
        level = logging.WARNING if outcome in _REFUSALS else logging.INFO
        log.log(
            level,
            "%s %s %s %s %.1fms",
            caller.transport,
            _who(caller),
            method,
            outcome,
            seconds * 1000,
            extra={"netops": fields},
        )

    def answered(self, caller: Caller, method: str, outcome: str, seconds: float) -> None:
        """Log the instant call."""
        self.finished(caller, method, outcome, seconds)

    def refused(self, caller: Caller, reason: str) -> None:
        """Log the refused request."""
        fields = {"transport": caller.transport, "client": caller.client, "principal": caller.principal}
        fields["refused"] = reason
        log.warning("%s %s refused: %s", caller.transport, _who(caller), reason, extra={"netops": fields})


_REFUSALS = frozenset({UNAUTHENTICATED, RATE_LIMITED})


def _who(caller: Caller) -> str:
    """The client's address, and its token's name when it presented an accepted one (never the token)."""
    who = caller.client or "-"
    if caller.principal:
        return f"{who} ({caller.principal})"
    return f"{who} (bad token)" if caller.rejected else who


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the access fields when present."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "netops", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send logs to standard error as text or JSON lines."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
