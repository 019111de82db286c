"""The agent console: server-rendered pages under ``/`` (the API stays under ``/api/v1``)."""

from console.app import ConsoleConfig, setup_console

__all__ = ["ConsoleConfig", "setup_console"]
