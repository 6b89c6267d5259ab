"""TensorFlow here is only the input pipeline and the SavedModel export: it must stay off
the accelerators, whose memory is JAX's (as big_vision does)."""

from __future__ import annotations


def keep_tf_off_accelerators() -> None:
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TF already initialised its devices; nothing to do then
        pass
