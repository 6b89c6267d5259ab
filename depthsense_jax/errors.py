"""Errors whose message tells the user what happened and what to do; the command line
prints them without a traceback (as it does ValueError and FileNotFoundError)."""


class RunError(RuntimeError):
    """A run stopped for a reason its message explains."""


def require_extra(module: str, what: str, extra: str, packages: str):
    """The imported `module`, or a ValueError saying that `what` needs the optional `extra`
    (which installs `packages`) and how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{what} needs the [{extra}] extra: "
                         f"pip install 'depthsense-jax[{extra}]' ({packages})") from err
