"""Who is reading: the hospital's sign-in (OpenID Connect through ``st.login``) when the secrets have an
``[auth]`` section, else a typed name that the audit trail marks as unverified.

With sign-in, every page asks for it first, the sidebar shows who is signed in with a sign-out, and a
read is recorded under the provider's stable subject (``sub``) and display name. An optional
allow-list (``PNEUMONIA_READERS``, or ``[pneumonia] readers`` / ``reader_groups`` in the secrets)
limits who may record reads; everyone signed in may still view.

Roles: a **reader** records reads; a **site administrator** (``PNEUMONIA_ADMINS``, or ``[pneumonia]
admins`` / ``admin_groups``) saves or retires site operating points, scores folders on the server and
sees the whole audit trail; everyone signed in is a **viewer**. Without sign-in (one workstation) the one
user has every role. :func:`require_role` is asked at the moment an action acts, not only when drawing it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from pneumonia.core.literal import markdown_literal

READERS_ENV = "PNEUMONIA_READERS"  # comma-separated e-mail addresses or subjects allowed to record reads
ADMINS_ENV = "PNEUMONIA_ADMINS"  # comma-separated e-mail addresses or subjects of the site administrators
SERVER_FOLDERS_ENV = "PNEUMONIA_SERVER_FOLDERS"  # folders ("Your data") may be scored from, separated by ":"
DEFAULT_GROUP_CLAIM = "groups"  # Entra ID: "groups" or "roles"; Keycloak and Okta: a "groups" mapper
DEFAULT_SIGN_IN_HOURS = 12.0  # one shift: after that the reader signs in again
TYPED_READER_KEY = "reader"  # session state: the typed name, on a server without sign-in


@dataclass(frozen=True)
class Reader:
    """The reader a read is recorded under. ``subject``: the provider's stable id, "" for a typed name."""

    name: str
    subject: str
    verified: bool
    refusal: str = ""  # why this reader may not record reads, in words; "" when they may

    @property
    def may_record(self) -> bool:
        return not self.refusal


@dataclass(frozen=True)
class AllowList:
    """Who may record reads. Empty: everyone who signs in."""

    readers: frozenset[str] = frozenset()  # lower-case e-mail addresses or subjects
    groups: frozenset[str] = frozenset()
    group_claim: str = DEFAULT_GROUP_CLAIM
    admins: frozenset[str] = frozenset()  # site administrators: nobody unless named
    admin_groups: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        """True when reads are limited to listed readers (the administrators do not limit reads)."""
        return bool(self.readers or self.groups)


class Role(StrEnum):
    READER = "reader"  # records reads
    ADMIN = "site administrator"  # site operating points, folders on the server, the whole audit trail
    VIEWER = "viewer"  # views images and results


EVERY_ROLE = frozenset(Role)


def sign_in_configured() -> bool:
    """True when the secrets file has an ``[auth]`` section (Streamlit's sign-in is configured)."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # an unreadable secrets file is reported by Streamlit itself
        return False


def _settings() -> Mapping:
    """The ``[pneumonia]`` section of the secrets, or an empty one."""
    try:
        if st.secrets.load_if_toml_exists():
            return st.secrets.get("pneumonia", {})
    except Exception:  # an unreadable secrets file is reported by Streamlit itself
        pass
    return {}


def _as_set(values: Iterable[str] | str | None) -> frozenset[str]:
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = values.split(",")
    return frozenset(v.strip().lower() for v in values if str(v).strip())


def allow_list(settings: Mapping | None = None, environ: Mapping[str, str] | None = None) -> AllowList:
    """The allow-list from ``$PNEUMONIA_READERS`` and the secrets' ``[pneumonia]`` section together."""
    settings = _settings() if settings is None else settings
    environ = os.environ if environ is None else environ
    return AllowList(
        readers=_as_set(environ.get(READERS_ENV)) | _as_set(settings.get("readers")),
        groups=_as_set(settings.get("reader_groups")),
        group_claim=str(settings.get("group_claim", DEFAULT_GROUP_CLAIM)),
        admins=_as_set(environ.get(ADMINS_ENV)) | _as_set(settings.get("admins")),
        admin_groups=_as_set(settings.get("admin_groups")),
    )


def display_name(claims: Mapping) -> str:
    """The name shown and recorded: the provider's ``name``, else its e-mail or user name, else the subject."""
    for key in ("name", "email", "preferred_username", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return "unknown"


def _listed(claims: Mapping, names: frozenset[str], groups: frozenset[str], group_claim: str) -> bool:
    """True when the user's subject, e-mail or user name is in ``names``, or one of their groups in ``groups``."""
    ids = {str(claims.get(k, "")).strip().lower() for k in ("sub", "email", "preferred_username")} - {""}
    theirs = claims.get(group_claim) or []
    theirs = {theirs} if isinstance(theirs, str) else set(theirs)
    return bool(ids & names or _as_set(theirs) & groups)


def roles_of(claims: Mapping, allowed: AllowList) -> frozenset[Role]:
    """A signed-in user's roles: viewer always; reader and site administrator as the lists say. Without
    the provider's stable subject, viewer only (nothing could be recorded under them)."""
    if not claims.get("sub"):
        return frozenset({Role.VIEWER})
    roles = {Role.VIEWER}
    if not refusal(claims, allowed):
        roles.add(Role.READER)
    if _listed(claims, allowed.admins, allowed.admin_groups, allowed.group_claim):
        roles.add(Role.ADMIN)
    return frozenset(roles)


def refusal(claims: Mapping, allowed: AllowList) -> str:
    """Why this signed-in user may not record reads ("" when they may)."""
    if not claims.get("sub"):
        return "Your sign-in did not give a stable user id (the provider's 'sub' claim); reads cannot be recorded."
    if not allowed or _listed(claims, allowed.readers, allowed.groups, allowed.group_claim):
        return ""
    return (
        f"{markdown_literal(display_name(claims))} is not on this server's list of readers: "
        "you can view images and results, but not record reads. Ask the administrator to add you."
    )


def signed_in() -> bool:
    """True when this session's browser came back from the provider signed in (``st.user``)."""
    return bool(st.user.get("is_logged_in", False))


def sign_in_expired(claims: Mapping, hours: float, now: float | None = None) -> bool:
    """True when the sign-in (the provider's ``auth_time``, else the token's ``iat``) is older than ``hours``."""
    signed_in = claims.get("auth_time") or claims.get("iat")
    if not isinstance(signed_in, int | float):
        return False
    return (time.time() if now is None else now) - signed_in > hours * 3600


def current_reader() -> Reader:
    """The reader a read is recorded under: the signed-in user, or the typed (unverified) name."""
    if not sign_in_configured():
        typed = str(st.session_state.get(TYPED_READER_KEY, "")).strip()
        why = "" if typed else "Enter your name or initials under **Reader** in the sidebar first."
        return Reader(typed, "", False, why)
    claims = st.user.to_dict() if signed_in() else {}
    if not claims:
        return Reader("", "", False, "Sign in first.")
    return Reader(display_name(claims), str(claims.get("sub", "")), True, refusal(claims, allow_list()))


def current_roles() -> frozenset[Role]:
    """This session's roles, read afresh from the sign-in and the lists each time: every role without
    sign-in (one workstation), none before sign-in."""
    if not sign_in_configured():
        return EVERY_ROLE
    claims = st.user.to_dict() if signed_in() else {}
    return roles_of(claims, allow_list()) if claims else frozenset()


def has_role(role: Role) -> bool:
    """Whether to draw a role's control; the action itself still asks :func:`require_role`."""
    return role in current_roles()


def require_role(role: Role, action: str) -> str:
    """Asked on the server at the moment ``action`` acts: "" when this session's user has ``role``, else
    why not, in words (the action is then not done)."""
    if role in current_roles():
        return ""
    who = current_reader().name or "You"
    return (
        f"{markdown_literal(who)} may not {action}: that needs the {role.value} role on this server. "
        "Ask the administrator if you need it."
    )


def server_folder_roots(settings: Mapping | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders under which "Your data" may score a folder on this server: ``$PNEUMONIA_SERVER_FOLDERS``
    (separated by ``:``) and ``[pneumonia] server_folders``; none by default."""
    settings = _settings() if settings is None else settings
    environ = os.environ if environ is None else environ
    named = [t for t in str(environ.get(SERVER_FOLDERS_ENV, "")).split(os.pathsep) if t.strip()]
    listed = settings.get("server_folders") or []
    named += [listed] if isinstance(listed, str) else list(listed)
    return [Path(t.strip()).resolve() for t in named]


def server_folder(text: str, roots: list[Path]) -> tuple[Path | None, str]:
    """The folder to score and "", or None and why not. Outside every root, a missing folder and an empty
    one get the same answer, so the answer never tells whether a path exists."""
    if not roots:
        return None, "Scoring a folder on this server is switched off here (no folders are configured for it)."
    outside = (
        "That folder is not one this server lets the app read. Folders under "
        + ", ".join(str(r) for r in roots)
        + " can be scored."
    )
    try:
        folder = Path(text.strip()).expanduser().resolve()  # symbolic links and ".." followed before the check
    except (OSError, RuntimeError, ValueError):
        return None, outside
    if not text.strip() or not any(folder.is_relative_to(root) for root in roots):
        return None, outside
    if not folder.is_dir():
        return None, f"There is no folder {folder} (it is under an allowed folder, so you may see this)."
    return folder, ""


def sign_out() -> None:
    """End the session: forget everything this session held (worklist, uploads, reads), then sign out."""
    st.session_state.clear()
    st.logout()


@st.cache_data(ttl=60, show_spinner=False)
def _provider_problem(metadata_url: str) -> str:
    """Why the provider's discovery document cannot be had ("" when it answers), in words."""
    host = urlsplit(metadata_url).netloc or metadata_url
    try:
        with urllib.request.urlopen(metadata_url, timeout=5) as answer:
            json.loads(answer.read())["authorization_endpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return (
            f"The hospital's sign-in service ({host}) does not answer, so nobody can sign in right now. "
            "Try again in a minute; if it goes on, tell IT."
        )
    return ""


def sign_in_problem() -> str:
    """Why sign-in cannot start on this server ("" when it can): settings missing from ``[auth]``
    (Streamlit's own check), or a provider that does not answer."""
    from streamlit.auth_util import validate_auth_credentials
    from streamlit.errors import StreamlitAuthError

    try:
        validate_auth_credentials("default")
    except StreamlitAuthError as incomplete:
        return f"Sign-in is set up incompletely on this server: {' '.join(str(incomplete).split())} Tell IT."
    return _provider_problem(str(st.secrets["auth"].get("server_metadata_url", "")))


def _sign_in_screen() -> None:
    st.title("Pneumonia x-ray review")
    st.write("Sign in with your hospital account to review chest x-rays.")
    problem = sign_in_problem()
    if problem:
        st.error(problem)
    st.button("Sign in", type="primary", on_click=st.login, disabled=bool(problem))
    st.caption("Reads are recorded under the name and user id your hospital's sign-in gives.")


def require_sign_in() -> None:
    """With ``[auth]`` configured: a visitor who is not signed in sees only the sign-in screen (no page of
    the app runs); one who is sees who is signed in, with a sign-out, in the sidebar."""
    if not sign_in_configured():
        return
    hours = float(_settings().get("sign_in_hours", DEFAULT_SIGN_IN_HOURS))
    if signed_in() and sign_in_expired(st.user.to_dict(), hours):
        sign_out()  # a shift's sign-in has run out: the reader signs in again
    if not signed_in():
        st.navigation([st.Page(_sign_in_screen, title="Sign in", default=True)], position="hidden").run()
        st.stop()
    reader = current_reader()
    with st.sidebar:
        st.markdown(f"Signed in as **{markdown_literal(reader.name)}**")
        st.button("Sign out", on_click=sign_out, key="sign_out")


def reader_field() -> None:
    """The review page's reader control: nothing to type when signed in (a note when the reader may not
    record reads); without sign-in, a typed name that the audit trail marks as unverified."""
    if sign_in_configured():
        reader = current_reader()
        if not reader.may_record:
            st.warning(reader.refusal)
        return
    st.text_input(
        "Reader (your name or initials; unverified)",
        key=TYPED_READER_KEY,
        help="This server has no hospital sign-in, so the name is recorded as typed and marked unverified "
        "in the audit trail. Entered once per session.",
    )
