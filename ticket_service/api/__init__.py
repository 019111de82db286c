"""The read-only REST API over the ticket store (``/api/v1``), authenticated by API key."""

from ticket_service.api.app import create_app, setup_api

__all__ = ["create_app", "setup_api"]
