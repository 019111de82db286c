"""SQLAlchemy Core tables, engine setup and migrations."""

from ticket_service.store.db import Database, migrate

__all__ = ["Database", "migrate"]
