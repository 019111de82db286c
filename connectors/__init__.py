"""One module or subpackage per channel: ingress, verification and ``parse``."""
