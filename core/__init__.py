"""What every stage shares: envelope, stream bus, settings, logging, Redis, ids, blobs."""
