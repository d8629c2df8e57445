"""PostgreSQL's role model for the audit trail: the owner role creates and migrates the tables; the
app's role may only read and append. A DBA runs these grants once after ``python -m pneumonia.audit
upgrade`` has created the tables (README: "The audit trail on a shared server")."""

from __future__ import annotations

import re

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def app_role_grants(app_role: str, schema: str = "public") -> list[str]:
    """The statements that give ``app_role`` SELECT and INSERT on the reviews, nothing more.

    No sequence is granted: ids are given by the writer under a lock, not by a sequence.
    """
    for name in (app_role, schema):
        if not _ROLE.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain PostgreSQL name (lower-case letters, digits, _)")
    return [
        f"REVOKE ALL ON {schema}.reviews, {schema}.alembic_version FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {schema} TO {app_role}",
        f"GRANT SELECT, INSERT ON {schema}.reviews TO {app_role}",
        f"GRANT SELECT ON {schema}.alembic_version TO {app_role}",
    ]
