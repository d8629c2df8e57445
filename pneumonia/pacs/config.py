"""Where the PACS is and how to sign in: from the environment or a TOML file, never from the page.

Environment: ``PNEUMONIA_PACS_URL`` (the DICOMweb root, e.g. ``http://pacs:8042/dicom-web``),
``PNEUMONIA_PACS_USER`` and ``PNEUMONIA_PACS_PASSWORD`` (HTTP basic) or ``PNEUMONIA_PACS_TOKEN``
(bearer), ``PNEUMONIA_PACS_CA_BUNDLE`` (the hospital's CA certificates for https),
``PNEUMONIA_PACS_TIMEOUT`` (seconds to wait for an answer, default 30) and
``PNEUMONIA_PACS_RETRIES`` (tries after a connection error or a server error, default 3).
``PNEUMONIA_PACS_CONFIG`` names a TOML file with the same keys in lower case without the prefix
(``url``, ``user``, ``password``, ``token``, ``ca_bundle``, ``timeout``, ``retries``); the
environment wins over the file. Passwords and tokens never appear in a message or a log line.

The DICOM node (``python -m pneumonia.listen``) answers only its own AE title, and, when these are set,
only the calling AE titles in ``PNEUMONIA_NODE_CALLING_AES`` (comma-separated, e.g. ``CR-ROOM-1,DX-ED``)
and the addresses in ``PNEUMONIA_NODE_ADDRESSES`` (comma-separated addresses or networks, e.g.
``10.1.20.0/24,10.1.30.7``); see :func:`node_access`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "PNEUMONIA_PACS_"
KEYS = ("url", "user", "password", "token", "ca_bundle", "timeout", "retries")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3


class PacsError(RuntimeError):
    """The PACS could not be used; ``str(err)`` says why in words (never a password or token)."""


class PacsConfigError(PacsError):
    """The PACS settings themselves are wrong (before any request is made)."""


@dataclass(frozen=True)
class PacsConfig:
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES

    @property
    def shown_url(self) -> str:
        """The URL as messages show it: without any user name or password written into it."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """``https://user:pw@host/x`` -> ``https://host/x``; anything after ``?`` is dropped too."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_dicomweb_url(text: str) -> bool:
    return str(text).lower().startswith(("http://", "https://"))


def _from_file(path: str) -> dict:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise PacsConfigError(f"The PACS configuration file {path} cannot be read ({err.strerror or err}).") from None
    except tomllib.TOMLDecodeError as err:
        raise PacsConfigError(f"The PACS configuration file {path} is not valid TOML ({err}).") from None
    section = raw.get("pacs", raw)  # a [pacs] table, or the keys at the top level
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise PacsConfigError(f"The PACS configuration file {path} has unknown keys: {', '.join(unknown)}.")
    return dict(section)


def _number(values: dict, key: str, kind: type, default: float) -> float:
    text = values.get(key)
    if text in (None, ""):
        return default
    try:
        number = kind(text)
    except (TypeError, ValueError):
        raise PacsConfigError(f"The PACS setting {key} must be a number, not {text!r}.") from None
    if number < 0:
        raise PacsConfigError(f"The PACS setting {key} cannot be negative.")
    return number


def load_config(env: Mapping[str, str] | None = None, url: str | None = None) -> PacsConfig | None:
    """The configured PACS, or None when none is configured. ``url`` (a command line's) overrides
    the configured address but keeps the configured sign-in."""
    env = os.environ if env is None else env
    values: dict = {}
    if env.get(ENV_PREFIX + "CONFIG"):
        values.update(_from_file(env[ENV_PREFIX + "CONFIG"]))
    values.update({k: env[ENV_PREFIX + k.upper()] for k in KEYS if env.get(ENV_PREFIX + k.upper())})
    if url:
        values["url"] = url
    if not values.get("url"):
        return None
    if not is_dicomweb_url(values["url"]):
        raise PacsConfigError(
            f"The PACS address must start with http:// or https://, not {redact_url(values['url'])!r}."
        )
    if values.get("token") and values.get("user"):
        raise PacsConfigError("Set either a PACS user and password or a token, not both.")
    if values.get("ca_bundle") and not Path(values["ca_bundle"]).exists():
        raise PacsConfigError(f"The PACS CA bundle {values['ca_bundle']} does not exist.")
    return PacsConfig(
        url=str(values["url"]).rstrip("/"),
        user=values.get("user") or None,
        password=values.get("password") or None,
        token=values.get("token") or None,
        ca_bundle=values.get("ca_bundle") or None,
        timeout=float(_number(values, "timeout", float, DEFAULT_TIMEOUT_S)),
        retries=int(_number(values, "retries", int, DEFAULT_RETRIES)),
    )


def with_url(config: PacsConfig, url: str) -> PacsConfig:
    return replace(config, url=url.rstrip("/"))


NODE_CALLERS_ENV = "PNEUMONIA_NODE_CALLING_AES"
NODE_ADDRESSES_ENV = "PNEUMONIA_NODE_ADDRESSES"


@dataclass(frozen=True)
class NodeAccess:
    """Who may send to the DICOM node. Empty: any calling AE title, any address (the called AE title must
    always be the node's own)."""

    calling_aes: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def refusal(self, calling_ae: str, address: str) -> str:
        """Why a caller is refused, in words ("" when it may send)."""
        if self.calling_aes and calling_ae.strip() not in self.calling_aes:
            return f"the calling AE title {printable(calling_ae)!r} is not on the node's list of senders"
        if self.networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return "the caller's address cannot be read"
            if not any(ip in network for network in self.networks):
                return f"the address {address} is not on the node's list of senders"
        return ""


def printable(text: str, limit: int = 16) -> str:
    """A sender's AE title as a log line may show it: printable ASCII only, at most ``limit`` characters."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text)[:limit]).strip()


def node_access(env: Mapping[str, str] | None = None) -> NodeAccess:
    """The node's senders from ``PNEUMONIA_NODE_CALLING_AES`` and ``PNEUMONIA_NODE_ADDRESSES``."""
    env = os.environ if env is None else env
    callers = frozenset(t.strip() for t in env.get(NODE_CALLERS_ENV, "").split(",") if t.strip())
    too_long = sorted(c for c in callers if len(c) > 16)
    if too_long:
        raise PacsConfigError(f"{NODE_CALLERS_ENV}: an AE title has at most 16 characters ({', '.join(too_long)}).")
    networks = []
    for text in (t.strip() for t in env.get(NODE_ADDRESSES_ENV, "").split(",") if t.strip()):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise PacsConfigError(
                f"{NODE_ADDRESSES_ENV}: {text!r} is not an address or a network (e.g. 10.1.20.0/24)."
            ) from None
    return NodeAccess(callers, tuple(networks))
