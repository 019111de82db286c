"""A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port: ``ops.pgcluster``,
which ``make chaos-pg`` starts too."""

from ops.pgcluster import Cluster, pg_bin
from ops.pgcluster import as_postgres as _as_postgres

__all__ = ["Cluster", "_as_postgres", "pg_bin"]
