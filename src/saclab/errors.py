"""The one exception type users see: a clear, one-line message, no traceback."""


class SaclabError(Exception):
    """A user-facing error (bad input, bad file, diverged training).

    The CLI prints ``saclab: error: <message>`` and exits with status 2.
    """
