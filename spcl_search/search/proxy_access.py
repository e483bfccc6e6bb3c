"""Who may talk to the storage proxy, and how: tokens, TLS, and what a client sends with every call.

* **Tokens.** The proxy is started with ``--token-file F`` (one token, read from a file so that no command line
  shows it) and optionally ``--read-only-token-file F`` (a token for ``status``, ``best``, ``report`` and the
  dashboard, which may only read). A client reads its token from the file named by ``--token-file`` or
  ``$SPCL_SEARCH_TOKEN_FILE`` and sends it as ``authorization: Bearer <token>`` metadata with every call,
  Optuna's and the Coordinator's alike; the proxy answers a missing or wrong one with ``PERMISSION_DENIED``.
* **TLS.** ``storage-proxy --tls-cert C --tls-key K`` serves over TLS; clients then use ``grpcs://HOST:PORT``
  and trust the certificate named by ``--ca-file`` / ``$SPCL_SEARCH_CA_FILE`` (else the system's roots).
* **Who holds a trial.** Each client picks a random id for its lifetime and sends it (``spcl-client``) with
  every call; the proxy records who started a trial and accepts heartbeats, results and attrs of a running
  trial only from that client (others only once the trial is stale).

Token files should be 0600 and hold at least 16 random characters (``openssl rand -hex 32 > F``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spcl_search.errors import ConfigError

__all__ = [
    "AUTH_HEADER",
    "CA_ENV",
    "CLIENT_HEADER",
    "MIN_TOKEN_LENGTH",
    "TOKEN_ENV",
    "ClientAccess",
    "client_channel",
    "holder_of",
    "is_loopback",
    "read_token",
]

#: environment variable naming the client's token file
TOKEN_ENV = "SPCL_SEARCH_TOKEN_FILE"
#: environment variable naming the CA certificate a client trusts for ``grpcs://``
CA_ENV = "SPCL_SEARCH_CA_FILE"
#: metadata keys (gRPC wants them lower case)
AUTH_HEADER = "authorization"
CLIENT_HEADER = "spcl-client"
#: shortest token accepted (a guessable token is no guard)
MIN_TOKEN_LENGTH = 16
#: the largest reply a client accepts (a study's trials with their attrs)
MAX_REPLY_BYTES = 512 << 20


def read_token(path: str | os.PathLike[str], option: str = "--token-file") -> str:
    """The token in the file at ``path`` (its first line, stripped); a one-line ConfigError naming ``option`` otherwise."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
        mode = file.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"{option} {path}: cannot read the token ({reason})") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{option} {path}: the token must be at least {MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32 > {path})")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{option} {path}: other users can read it; run chmod 600 {path}")
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a proxy bound there needs no token): ``localhost`` or a loopback
    address (``127.0.0.1``, ``::1``); a host name that merely starts with "127." is not one."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def holder_of(client_id: str) -> str:
    """What the proxy stores for the client that started a trial (a digest: the id itself stays secret)."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


@dataclass
class ClientAccess:
    """What a client presents: its token (or none), the CA it trusts for TLS, and its own random id."""

    token: str | None = None
    ca_file: str | None = None
    client_id: str = field(default_factory=lambda: secrets.token_hex(16))

    @classmethod
    def from_environment(cls) -> ClientAccess:
        """The token and CA named by ``$SPCL_SEARCH_TOKEN_FILE`` and ``$SPCL_SEARCH_CA_FILE`` (each optional)."""
        token_file = os.environ.get(TOKEN_ENV)
        token = read_token(token_file, f"${TOKEN_ENV}") if token_file else None
        return cls(token=token, ca_file=os.environ.get(CA_ENV) or None)

    def metadata(self) -> list[tuple[str, str]]:
        out = [(CLIENT_HEADER, self.client_id)]
        if self.token is not None:
            out.append((AUTH_HEADER, f"Bearer {self.token}"))
        return out


def client_channel(host: str, port: int, access: ClientAccess, *, tls: bool) -> Any:
    """A gRPC channel to the proxy that sends ``access``'s metadata with every call (over TLS when ``tls``)."""
    import grpc

    target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    options = [("grpc.max_receive_message_length", MAX_REPLY_BYTES)]
    if tls:
        roots = None
        if access.ca_file:
            try:
                roots = Path(access.ca_file).expanduser().read_bytes()
            except OSError as exc:
                raise ConfigError(f"CA file {access.ca_file}: cannot read it ({exc.strerror or exc})") from None
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _with_metadata(access.metadata()))


def _with_metadata(metadata: Sequence[tuple[str, str]]) -> Any:
    """A client interceptor adding ``metadata`` to every unary call (the only kind Optuna's client and the Coordinator make)."""
    import grpc

    class Details(grpc.ClientCallDetails):
        def __init__(self, original: Any) -> None:
            self.method, self.timeout, self.credentials = original.method, original.timeout, original.credentials
            self.wait_for_ready = getattr(original, "wait_for_ready", None)
            self.compression = getattr(original, "compression", None)
            self.metadata = [*(original.metadata or ()), *metadata]

    class Interceptor(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
            return continuation(Details(details), request)

    return Interceptor()
