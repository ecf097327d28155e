"""Data set names: one check for every name that becomes a file or directory name.

A data set's name is the directory its results go to (``DIR/NAME/result.json``) and its column
in every table, so it is data, never a path: a name such as ``../../x`` would write outside the
output directory, and ``results.json`` would collide with the output layout's own files.
"""

from __future__ import annotations

import re

from fingpt_hf.errors import FinGPTError

MAX_NAME_LENGTH = 64
# Files the evaluation output layout keeps next to the data set directories (see
# fingpt_hf/evaluation/results.py); compared case-insensitively, for case-insensitive file systems.
RESERVED_NAMES: frozenset[str] = frozenset({"results.json", "results.md", "results.json.corrupt"})
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_dataset_name(name: object, what: str = "data set name") -> str:
    """Return ``name`` if it is safe as a single directory name, else raise naming ``what``.

    Allowed: letters, digits, ``-``, ``_`` and ``.``, not starting with a dot, at most
    ``MAX_NAME_LENGTH`` characters, and not one of the output layout's file names.
    """
    if not isinstance(name, str) or not name:
        raise FinGPTError(f"{what}: expected a non-empty name, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise FinGPTError(f"{what} {name[:20]!r}...: {len(name)} characters; at most {MAX_NAME_LENGTH}")
    if not _NAME.fullmatch(name):
        raise FinGPTError(f"{what} {name!r}: use only letters, digits, '-', '_' and '.' (not first); "
                          "a name is a directory name, never a path")
    if name.lower() in RESERVED_NAMES:
        raise FinGPTError(f"{what} {name!r} is a file name the evaluation output uses; choose another")
    return name
