"""What a command reports instead of a traceback."""

from __future__ import annotations

from workpath import errors

#: Exit codes: the command ran and found a problem (unknown name, refused, failed run); it was used wrongly.
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(errors.WorkpathError):
    """A command cannot go on: ``message`` says what was wrong and what to do; ``code`` is its exit code."""

    def __init__(self, message: str, *, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
