"""The switchboard CLI, role runners and admin commands."""
