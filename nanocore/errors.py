"""Errors a user can fix: the CLI prints them in one line, without a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad file, wrong model, missing data). Message: one line."""
