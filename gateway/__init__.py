"""The aiohttp application that mounts the push connectors' routes."""
