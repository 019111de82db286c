"""The SQL store of tickets and the REST API over it."""
