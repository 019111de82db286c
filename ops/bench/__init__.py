"""End-to-end benchmarks: the system as separate role processes, driven by real clients."""
