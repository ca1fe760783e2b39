"""The command line's own error: a problem with the user's input, printed by `main` as one
line with exit status 2 (a module of its own so that every sub-command imports it at the top
without importing the package that lists the sub-commands)."""

from __future__ import annotations

import os


class UserError(Exception):
    """An error in the user's input: printed as one clear line, exit status 2."""


def check_output(option: str, path: str | os.PathLike[str] | None) -> None:
    """Before any work: the directory of an output file exists and is writable (UserError)."""
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{option} {path}: the directory {parent} is not writable")
    if os.path.isdir(path):
        raise UserError(f"{option} {path}: is a directory, expected a file name")
