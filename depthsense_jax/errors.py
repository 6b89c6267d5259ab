"""Errors whose message tells the user what happened and what to do; the command line
prints them without a traceback (as it does ValueError and FileNotFoundError)."""


class RunError(RuntimeError):
    """A run stopped for a reason its message explains."""
