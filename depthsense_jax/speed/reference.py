"""What `--compare` needs before it times the plain-PyTorch peers beside ours (the loss
formulas of `speed.torch_losses`, a model family's `torch_peer`): torch, an optional
dependency (the [compare] extra), with its threads set to this process's cores."""

from __future__ import annotations

from types import ModuleType


def require_torch() -> ModuleType:
    """The torch module, or a ValueError saying what to install."""
    try:
        import torch
    except ImportError as err:
        raise ValueError(f"--compare needs torch ({err}); pip install -e '.[compare]'") from None
    from depthsense_jax.speed.timing import cpu_count

    torch.set_num_threads(cpu_count())
    return torch
