"""The audit trail from the command line.

python -m pneumonia.audit verify [--url URL]
    one JSON line {"rows": N, "ok": true|false, "first_bad_row": id|null}; what broke goes to stderr.
    Exit 0 when the chain is intact, 1 when a row was changed, removed or inserted out of order,
    2 when the database cannot be read.
python -m pneumonia.audit export --from YYYY-MM-DD --to YYYY-MM-DD [--url URL] --out FILE.csv
    the reviews made on those days (UTC, both inclusive), with their hashes, as CSV.
python -m pneumonia.audit upgrade [--url URL]
    bring the schema up to date (run with the owner's URL on PostgreSQL).
python -m pneumonia.audit grant --app-role ROLE [--url URL]
    on PostgreSQL, as the owner: give the app's role read and append rights on the reviews, nothing more.
python -m pneumonia.audit head [--url URL] [--out FOLDER]
    the chain's latest row as one JSON line {"rows": N, "id": N, "time": ..., "row_hash": ...}; with
    --out also written to FOLDER/audit-head-<UTC time>.json (a new file each time, none overwritten),
    to keep a copy of the head where the database's owner cannot change it.

Without --url: $PNEUMONIA_AUDIT_URL, else the SQLite file $PNEUMONIA_AUDIT_DB or the user's default.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from pneumonia.audit.database import AuditUnavailable
from pneumonia.audit.log import AuditLog

BROKEN, UNAVAILABLE = 1, 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pneumonia.audit", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    url_help = "database URL (sqlite:///PATH or postgresql://...); default: $PNEUMONIA_AUDIT_URL or the SQLite file"
    verify = commands.add_parser("verify", help="check the hash chain", allow_abbrev=False)
    verify.add_argument("--url", help=url_help)
    export = commands.add_parser("export", help="the reviews of a date range as CSV", allow_abbrev=False)
    export.add_argument("--from", dest="first_day", type=_day, required=True, help="first day (UTC), YYYY-MM-DD")
    export.add_argument("--to", dest="last_day", type=_day, required=True, help="last day (UTC), YYYY-MM-DD")
    export.add_argument("--url", help=url_help)
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    upgrade = commands.add_parser("upgrade", help="bring the schema up to date", allow_abbrev=False)
    upgrade.add_argument("--url", help=url_help)
    grant = commands.add_parser("grant", help="the app role's read and append rights", allow_abbrev=False)
    grant.add_argument("--url", help=url_help)
    grant.add_argument("--app-role", required=True, help="the PostgreSQL role the app signs in as")
    head = commands.add_parser("head", help="the chain's latest row hash, to keep elsewhere", allow_abbrev=False)
    head.add_argument("--url", help=url_help)
    head.add_argument("--out", type=Path, help="folder that keeps one JSON file per export")
    return parser


def _verify(args: argparse.Namespace) -> int:
    log = AuditLog(args.url, migrate=False)
    verdict = log.verify()
    log.close()
    print(json.dumps(verdict.summary()))
    print(verdict.reason, file=sys.stderr)
    return 0 if verdict.ok else BROKEN


def _export(args: argparse.Namespace) -> int:
    if args.last_day < args.first_day:
        print(f"--to {args.last_day} is before --from {args.first_day}", file=sys.stderr)
        return UNAVAILABLE
    log = AuditLog(args.url, migrate=False)
    rows = log.between(args.first_day, args.last_day)
    log.close()
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
    except OSError as error:
        print(f"Cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return UNAVAILABLE
    print(f"{len(rows)} reviews from {args.first_day} to {args.last_day} written to {args.out}")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    log = AuditLog(args.url)
    print(f"The audit trail at {log.where} is up to date.")
    log.close()
    return 0


def _grant(args: argparse.Namespace) -> int:
    from pneumonia.audit import database
    from pneumonia.audit.roles import app_role_grants

    url = database.resolve_url(args.url)
    if url.get_backend_name() != "postgresql":
        print("Roles exist on PostgreSQL only: a SQLite trail needs no grants.", file=sys.stderr)
        return 0
    try:
        statements = app_role_grants(args.app_role)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return UNAVAILABLE
    engine = database.make_engine(url)
    with database.database_errors(url, "granting the app's role its rights"), engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()
    print(f"The role {args.app_role} may read and append reviews at {database.redacted(url)}, nothing more.")
    return 0


def _head(args: argparse.Namespace) -> int:
    log = AuditLog(args.url, migrate=False)
    newest = log.recent(1)
    log.close()
    head = {"rows": 0, "id": None, "time": None, "row_hash": None}
    if not newest.empty:
        row = newest.iloc[0]
        head = {"rows": int(row["id"]), "id": int(row["id"]), "time": str(row["time"]), "row_hash": row["row_hash"]}
    line = json.dumps(head)
    if args.out is not None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
            with open(args.out / f"audit-head-{stamp}.json", "x") as file:
                file.write(line + "\n")
        except OSError as error:
            print(f"Cannot write the chain head into {args.out}: {error.strerror}", file=sys.stderr)
            return UNAVAILABLE
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run = {"verify": _verify, "export": _export, "upgrade": _upgrade, "grant": _grant, "head": _head}[args.command]
    try:
        return run(args)
    except AuditUnavailable as error:
        print(str(error), file=sys.stderr)
        return UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
