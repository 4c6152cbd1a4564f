"""Exception types of the compressor.

Callers (the CLI, the Ray actors) catch these to turn a bad input into a one-line message or a
`failed` manifest row; anything else escaping the core is a bug, not bad input.
"""


class SogsError(Exception):
    """Base of every error the compressor raises on purpose."""


class SplatFileError(SogsError):
    """An input file of any supported format that cannot be read: truncated, bad magic, an
    unsupported version, counts that do not match the bytes, a broken gzip or zstd stream. The
    message names the file and the problem; every reader raises this type (or a subclass)."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class PlyError(SplatFileError):
    """A PLY file (INRIA or PlayCanvas compressed) that cannot be read."""


class SogFormatError(SplatFileError):
    """A SOG file set (bundle or folder) that does not follow the format."""


class SceneTooLarge(SplatFileError):
    """A scene whose header claims more splats than --max-scene-splats allows (refused unread; a
    re-run with a higher cap tries it again, so the backfill does not settle it as bad input)."""


class EmptySceneError(SogsError):
    """The edits (`--invalid drop`, the filters) left no splat to write."""
