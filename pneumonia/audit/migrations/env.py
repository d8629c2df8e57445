"""Alembic's environment for the audit trail: always run from code (pneumonia.audit.database.upgrade),
on the connection and transaction it hands over in ``config.attributes["connection"]``."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the audit migrations through pneumonia.audit (python -m pneumonia.audit upgrade)")
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
