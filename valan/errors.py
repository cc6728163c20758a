"""One error type for bad user input, turned into a one-line message and exit status 2 by the CLI."""


class InputError(ValueError):
    """Bad input from the user: a malformed file, an unknown id, a wrong shape, a missing feature.

    The message is a single line that says what is wrong and where (file, id, field).
    """

    def __init__(self, message: str, *, source: str | None = None, record: str | None = None):
        where = ": ".join(part for part in (source, record) if part)
        super().__init__(f"{where}: {message}" if where else message)
