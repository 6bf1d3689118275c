"""Errors the user can fix. The CLI turns them into exit code 2 and the pages into a friendly message."""


class UserError(ValueError):
    """Bad input: the message says what is wrong and how to fix it."""


class ModelLoadError(UserError):
    """A base model could not be found or loaded; the message says where to point instead."""


class CorruptFileError(UserError):
    """A saved file (JSON) could not be read: the message names the file and what to do about it."""
