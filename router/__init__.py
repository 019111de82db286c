"""Assignment of tickets to agents: pure policy plus the worker that applies it atomically."""
