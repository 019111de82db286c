"""Channel-agnostic worker: parse, dedup, identify, thread, store, emit ticket events."""
