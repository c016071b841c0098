"""What an operation receives besides its arguments: its deadline and its services.

Operations never build resolvers, TLS contexts or policies themselves; the
gateway builds them once from :class:`~gateway.config.Settings` and passes them
in, so tests can hand an operation whatever they like.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field

from gateway.auth import Tokens
from gateway.config import Settings
from gateway.errors import TIMEOUT, GatewayError
from gateway.limits import ResultBudget
from gateway.names import Names
from gateway.policy import TargetPolicy

__all__ = ["Context", "Deadline", "Services"]


class Deadline:
    """The moment an operation must be finished by; every blocking step asks it how long it may wait."""

    __slots__ = ("_end", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raises ``timeout`` once none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> GatewayError:
        """The error to raise when the deadline has passed."""
        return GatewayError(TIMEOUT, f"operation exceeded its {self.seconds:g} s time limit")


@dataclass(frozen=True)
class Services:
    """Long-lived collaborators shared by every call."""

    settings: Settings
    names: Names
    policy: TargetPolicy
    tls: Trust
    tokens: Tokens = field(default_factory=Tokens)
    results: ResultBudget = field(default_factory=lambda: ResultBudget(0))  # 0: no budget

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        """Build resolver, target policy, TLS trust store, tokens and the result budget from settings."""
        return cls(
            settings=settings,
            names=Names(settings.nameserver_addresses() or None),
            policy=TargetPolicy(settings.allow_targets),
            tls=Trust.from_ca_file(settings.ca_file),
            tokens=Tokens.load(settings.token_file),
            results=ResultBudget(settings.max_result_bytes),
        )


@dataclass(frozen=True)
class Trust:
    """Client TLS contexts over one trust store, built once (loading a store costs milliseconds)."""

    full: ssl.SSLContext  # chain and host name verified: what https fetches use
    chain: ssl.SSLContext  # chain verified, host name judged separately: tls_check's first try
    none: ssl.SSLContext  # nothing verified: tls_check's look at a certificate that failed

    @classmethod
    def from_ca_file(cls, ca_file: str = "") -> Trust:
        """Contexts trusting ``ca_file`` (PEM), or the system store when empty."""
        try:
            full = ssl.create_default_context(cafile=ca_file or None)
            chain = ssl.create_default_context(cafile=ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load trust store {ca_file}: {exc}") from None
        chain.check_hostname = False
        none = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        none.check_hostname = False
        none.verify_mode = ssl.CERT_NONE
        return cls(full, chain, none)


class Context:
    """One call's view of the gateway: services plus a deadline."""

    __slots__ = ("deadline", "services", "settings")

    def __init__(self, services: Services, deadline: Deadline, settings: Settings | None = None) -> None:
        self.services = services
        self.deadline = deadline
        self.settings = settings or services.settings  # the operation's own, with its --limit entries

    @property
    def names(self) -> Names:
        """The resolver every lookup goes through."""
        return self.services.names

    @property
    def policy(self) -> TargetPolicy:
        """The target policy every outbound connection is checked against."""
        return self.services.policy
