"""configs/redweb.py for a Cloud TPU slice: bfloat16 compute (float32 params), global batch
256 split over every chip of every host, learning rate scaled with the batch.

Launch on all workers at once (docs/tpu.md); the global batch must divide by the number of
chips (v4-32: 16, v5e-64: 64).
"""

from depthsense_jax.config import base_config


def get_config():
    config = base_config("redweb")
    config.model.dtype = "bfloat16"
    config.batch_size = 256
    # 32x the batch of configs/redweb.py: sqrt scaling of AdamW's learning rate, longer warmup.
    config.optimizer.learning_rate = 1e-4 * (256 / 8) ** 0.5
    config.optimizer.warmup_steps = 200
    config.num_epochs = 100  # ~13 steps an epoch at batch 256 on ReDWeb's 3,4k train images
    config.data.shuffle_buffer = 4096
    config.checkpoint.every = 200
    config.eval.train_batches = 2
    config.log_every = 10
    return config
