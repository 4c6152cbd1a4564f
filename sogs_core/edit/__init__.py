"""What is done to a scene before it is compressed, in one pass and one fixed order
(`settings.EditSettings`): invalid splats dropped (by the reader: `formats.checks.drop_invalid`,
the one step that must come before anything reads a value), the scene moved (`transform`,
its SH coefficients rotated with it by `sh_rotation`), splats outside a box or sphere or
below an opacity removed (`filters`), and the rest reduced to a splat budget by merging
neighbours (`budget`). `apply.apply_edits` runs them and counts what each removed."""
from sogs_core.edit.apply import EditReport, apply_edits

__all__ = ["EditReport", "apply_edits"]
