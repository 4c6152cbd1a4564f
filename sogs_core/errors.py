"""Exception types of the compressor.

Callers (the CLI, the Ray actors) catch these to turn a bad input into a one-line message or a
`failed` manifest row; anything else escaping the core is a bug, not bad input.
"""


class SogsError(Exception):
    """Base of every error the compressor raises on purpose."""


class PlyError(SogsError):
    """A PLY file that cannot be read: the message names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class SogFormatError(SogsError):
    """A SOG file set (bundle or folder) that does not follow the format."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")
