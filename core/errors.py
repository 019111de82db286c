"""The two kinds of failure a stage distinguishes."""


class PermanentError(Exception):
    """The input itself is bad (unparseable, unknown account): retrying cannot help.

    The consumer loop sends the entry to dead letters at once instead of retrying it.
    """


class EnvelopeError(PermanentError):
    """A stream entry that is not a decodable Envelope of a known version."""
