"""The one error type of the bag tools; CLIs print it as ``error: ...`` and exit 2."""


class BagError(ValueError):
    """A bag (or a file beside it) is missing, unreadable or does not hold what is needed."""
