"""The audit trail of reader reviews: append-only, hash-chained, SQLite by default or PostgreSQL by URL.

``AuditLog`` records and reads reviews; ``python -m pneumonia.audit verify|export|upgrade`` checks the
chain, exports a date range as CSV, and brings a database's schema up to date.
"""

from pneumonia.audit.chain import Verdict
from pneumonia.audit.database import (
    PATH_ENV_VAR,
    URL_ENV_VAR,
    AuditUnavailable,
    default_path,
    default_url,
    redacted,
    resolve_url,
)
from pneumonia.audit.log import AuditLog
from pneumonia.audit.roles import app_role_grants
from pneumonia.audit.schema import COLUMNS, EXPORT_COLUMNS, LEGACY_SQLITE_SCHEMA

ENV_VAR = PATH_ENV_VAR  # the name the first release used
_SCHEMA = LEGACY_SQLITE_SCHEMA  # tests build pre-Alembic files with it

__all__ = [
    "COLUMNS",
    "ENV_VAR",
    "EXPORT_COLUMNS",
    "LEGACY_SQLITE_SCHEMA",
    "PATH_ENV_VAR",
    "URL_ENV_VAR",
    "AuditLog",
    "AuditUnavailable",
    "Verdict",
    "app_role_grants",
    "default_path",
    "default_url",
    "redacted",
    "resolve_url",
]
