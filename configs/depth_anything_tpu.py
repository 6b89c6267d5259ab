"""configs/depth_anything_finetune.py for a Cloud TPU slice: bfloat16 compute (float32
params), global batch 64 split over every chip of every host, the learning rates scaled
with the batch.

Launch on all workers at once (docs/tpu.md), with the data and checkpoint where every host
reads them (gs://...); the global batch must divide by the number of chips (v4-32: 16,
v5e-64: 64):

    depthsense train --config depth_anything_tpu --workdir gs://BUCKET/runs/da \\
        --config.data.name=rgbd/mine --config.data.data_dir=gs://BUCKET/tfds \\
        --config.init.from=gs://BUCKET/checkpoints/Depth-Anything-V2-Small-hf
"""

from depthsense_jax.config import base_config


def get_config():
    config = base_config("depth_anything_finetune")
    config.model.dtype = "bfloat16"
    config.batch_size = 64
    # 8x the batch of depth_anything_finetune: sqrt scaling of AdamW's learning rates (the
    # encoder's stays a tenth of the decoder's), longer warmup.
    config.optimizer.learning_rate = 5e-5 * (64 / 8) ** 0.5
    config.optimizer.warmup_steps = 200
    config.num_epochs = 10
    config.steps_per_epoch = 0  # an epoch = train examples // 64
    config.data.shuffle_buffer = 4096
    config.checkpoint.every = 200
    config.eval.train_batches = 2
    config.log_every = 10
    return config
