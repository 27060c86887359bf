"""Who may change a fleetplan server: bearer tokens on state-changing endpoints, and the
router's allow-list of backends that may register.

Every request that is not `GET`, `HEAD` or `OPTIONS` changes state (the worker's
`/admin/*`, the router's `POST|DELETE /router/backends`, the daemon's `POST /invoke`),
except the inference endpoints each server names as open (`/v1/completions`,
`/v1/chat/completions`). `auth_middleware(policy, open_paths)` lets such a request
through only with `Authorization: Bearer <token>`, compared in constant time:

- `AuthPolicy(token=...)`: the token is required (401 with `WWW-Authenticate: Bearer`
  without it or with another one);
- `AuthPolicy()` (no token configured): state-changing requests are refused (403, saying
  how to configure one), so a server started without a token is read-only, never open;
- `AuthPolicy(insecure=True)`: no check at all; `load_policy` allows it only on a
  loopback address (`--insecure-no-auth`), so it can never be reached from another host.

`load_policy(token_file, insecure, host, environ)` reads the token from a file
(`--auth-token-file`, e.g. a mounted Kubernetes Secret) or the environment variable
`FLEETPLAN_AUTH_TOKEN` (the file wins); bad input (an unreadable or empty file, the
insecure flag on a non-loopback host) is a `SpecError`.

`AllowList` says which backend URLs `POST /router/backends` may register: exact host
names and IP networks (CIDR); the default is loopback only, so a registration cannot send
prompts to an arbitrary host. Host names are compared as written, never resolved.

To extend: another credential (mTLS, OIDC) is another check in `_authorized`; another
open endpoint is one more entry in the server's `open_paths`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web

from serving.openai_api import error_body
from specs.errors import SpecError

TOKEN_ENV = "FLEETPLAN_AUTH_TOKEN"
"""The environment variable a server reads its token from (after `--auth-token-file`)."""
READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AuthPolicy:
    """What a server requires of state-changing requests (see the module docstring)."""

    token: str | None = None
    insecure: bool = False

    def __repr__(self) -> str:  # never print the token
        return f"AuthPolicy(token={'set' if self.token else None}, insecure={self.insecure})"

    def describe(self) -> str:
        """One phrase for the server's start-up line."""
        if self.insecure:
            return "auth off (--insecure-no-auth, loopback only)"
        return "auth bearer token" if self.token else "auth none configured (writes refused)"


def is_loopback(host: str) -> bool:
    """True for a loopback address or name (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SpecError("the auth token file is not UTF-8 text", file=path) from None
    except OSError as exc:
        raise SpecError(f"cannot read the auth token file: {exc.strerror}", file=path,
                        json_path="--auth-token-file") from None
    if not token:
        raise SpecError("the auth token file is empty", file=path, json_path="--auth-token-file")
    return token


def load_policy(token_file: str | None, insecure: bool, host: str,
                environ: Mapping[str, str] | None = None) -> AuthPolicy:
    """The policy from the command line and the environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    if insecure:
        if not is_loopback(host):
            raise SpecError(f"--insecure-no-auth is allowed only on a loopback address, not "
                            f"{host!r}", json_path="--insecure-no-auth",
                            hint=f"give a token with --auth-token-file or {TOKEN_ENV}")
        return AuthPolicy(insecure=True)
    if token_file:
        return AuthPolicy(token=_read_token(token_file))
    token = (env.get(TOKEN_ENV) or "").strip()
    return AuthPolicy(token=token or None)


def _refuse(status: int, message: str, headers: Mapping[str, str] | None = None,
            ) -> web.Response:
    return web.json_response(error_body(status, message, "AuthenticationError"),
                             status=status, headers=headers)


def _authorized(policy: AuthPolicy, request: web.Request) -> web.Response | None:
    """None when the request may go on, else the refusal."""
    if policy.insecure:
        return None
    if policy.token is None:
        return _refuse(403, f"{request.method} {request.path} changes state and this server "
                       f"has no auth token configured: start it with {TOKEN_ENV} set or "
                       "--auth-token-file (or --insecure-no-auth on a loopback address)")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), policy.token.encode()):
        return _refuse(401, "a valid 'Authorization: Bearer <token>' header is required",
                       {"WWW-Authenticate": 'Bearer realm="fleetplan"'})
    return None


def auth_middleware(policy: AuthPolicy, open_paths: Collection[str] = ()) -> web.middleware:
    """An aiohttp middleware applying `policy` to state-changing requests."""
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_token(request.method, request.path, open_paths):
            refusal = _authorized(policy, request)
            if refusal is not None:
                return refusal
        return await handler(request)
    return check


def needs_token(method: str, path: str, open_paths: Collection[str]) -> bool:
    """True for a state-changing request to a path that is not open."""
    return method not in READ_ONLY and path not in open_paths


def bearer(token: str | None) -> dict[str, str]:
    """The request header carrying `token` (none without one), for clients."""
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass(frozen=True)
class AllowList:
    """Backend hosts allowed to register (see the module docstring)."""

    networks: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                     ipaddress.ip_network("::1/128"))
    hosts: frozenset[str] = LOOPBACK_NAMES

    @classmethod
    def parse(cls, items: Sequence[str]) -> AllowList:
        """From `--register-allow` values: CIDRs, IP addresses or host names."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for item in items:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                if not item.strip() or "/" in item:
                    raise SpecError(f"not a CIDR, address or host name: {item!r}",
                                    json_path="--register-allow") from None
                hosts.add(item.strip().lower())
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, url: str) -> bool:
        """True when the URL's host is listed or inside a listed network."""
        host = (urlparse(url).hostname or "").lower()
        if host in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def describe(self) -> str:
        """The list as text, for error messages."""
        return ", ".join([*(str(n) for n in self.networks), *sorted(self.hosts)]) or "nothing"

