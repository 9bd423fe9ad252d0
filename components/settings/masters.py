"""One control-plane node in the stack config: its name, where SSH reaches it, the host key it must show.

Part of settings (components/settings/__init__.py reads the config); kept apart because how a master is
reached is one coherent set of rules: a host is a host name or an IP address and is compared as
one (case-insensitive names, IP addresses by value), and a host key is parsed here exactly as the
SSH layer parses it, so a key it cannot use fails the settings naming the key instead of failing
the whole preview later.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, field_validator

from components.settings.base import Strict

if TYPE_CHECKING:
    import paramiko

_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_KEY_LINE = re.compile(r"^(\S+) ([A-Za-z0-9+/]+={0,2})( .*)?$")


def host_identity(host: str) -> str:
    """What makes two hosts the same machine: DNS names compare case-insensitively and without the
    root dot, IP addresses by value (`::1` is `0:0::1`, `::ffff:10.0.0.1` is `10.0.0.1`)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower().rstrip(".")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _host_problem(host: str) -> str | None:
    if host.startswith("[") and host.endswith("]"):
        return "an IPv6 address is written without brackets (the port is its own setting)"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "must be a host name (letters, digits, '-', '.') or an IP address"
    if labels[-1].isdigit():
        # Not an IP address, yet all digits at the end: resolvers read `10.6.0.011` as the octal
        # 10.6.0.9 and `10.6.1` as 10.6.0.1, a machine nobody meant.
        return "looks like an IPv4 address but is not one (write four decimal numbers without leading zeros)"
    return None


def host_key_from_line(line: str) -> tuple[str, paramiko.PKey]:
    """(key type, key) from an OpenSSH public key line `TYPE BASE64 [comment]`; ValueError says why not."""
    match = _KEY_LINE.match(line.strip())
    if not match:
        raise ValueError("must be an OpenSSH public host key line, e.g. 'ssh-ed25519 AAAA...'")
    kind, blob = match.group(1), match.group(2)
    # Imported here: paramiko takes ~0.1 s to load, and the command line (validate, lint, volume,
    # fleet) reads settings without ever checking a host key.
    import paramiko

    try:
        data = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the key is not valid base64 ({exc})") from None
    try:
        key = paramiko.PKey.from_type_string(kind, data)
    except paramiko.UnknownKeyType:
        raise ValueError(f"unknown host key type {kind!r} (e.g. ssh-ed25519, ecdsa-sha2-nistp256, "
                         "ssh-rsa)") from None
    except (paramiko.SSHException, ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not a valid {kind} key ({exc or type(exc).__name__}); copy the line from "
                         "/etc/ssh/ssh_host_*_key.pub on the master or `ssh-keyscan`") from None
    # paramiko reads a cut or padded blob without complaint (a truncated ed25519 key loads as a
    # different key), and then every connection fails on "host key does not match". A real key
    # encodes back to exactly the bytes it came from.
    if key.asbytes() != data:
        raise ValueError(f"not a valid {kind} key (its {len(data)} bytes do not encode one {kind} key: cut "
                         "short or with bytes added?); copy the whole line from /etc/ssh/ssh_host_*_key.pub "
                         "on the master or `ssh-keyscan`")
    return kind, key


class Master(Strict):
    """One control-plane node reached over SSH."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=63)]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: Annotated[str, Field(min_length=1)] = "root"
    host_key: str | None = Field(default=None, alias="hostKey")

    @field_validator("host")
    @classmethod
    def _a_host(cls, value: str) -> str:
        problem = _host_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("host_key")
    @classmethod
    def _public_key_line(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host_key_from_line(value)
        return value.strip()
