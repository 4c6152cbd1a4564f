"""Names a file holds (a streamed SOG's `filenames`, a listed object's key) checked before anything
is opened: nothing an input names may reach outside its own root."""
from __future__ import annotations

import os
from typing import Optional


def unsafe_relative_name(name: object) -> Optional[str]:
    """Why `name` cannot be a '/'-separated path under a root (None when it can): not a string,
    empty, absolute, a drive or backslash path, or holding an empty, '.' or '..' component."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a file name"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":") or "\x00" in name:
        return f"{name!r} is not a relative path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"{name!r} holds an empty, '.' or '..' component"
    return None


def path_inside(root: str, name: object) -> tuple[Optional[str], Optional[str]]:
    """(the path of `name` under the folder `root`, None) or (None, why not): the name must be
    a plain relative path, and the path, links resolved, must stay inside `root`."""
    problem = unsafe_relative_name(name)
    if problem is not None:
        return None, problem
    path = os.path.join(root, *str(name).split("/"))
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        return None, f"{name!r} leads outside {root or '.'} (a link)"
    return path, None
