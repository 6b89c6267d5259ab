"""Fine-tune a trained model on your own data: the pattern, on a folder dataset.

    depthsense data build folder --name mine --images photos/ --depth depth/ --kind depth \\
        --depth-scale 1000
    depthsense train --config finetune --workdir runs/mine \\
        --config.data.name=rgbd/mine --config.init.from=runs/quickstart

It starts from every weight of the model in `init.from` (a workdir or an export folder; its
architecture must match `model`, here the synthetic default's), trains the decoder at the
full learning rate and the encoder at a tenth of it, and logs the starting model's
validation score on the new data before the first step. Mix the old data back in to keep
what the model knew: --config.data.mixture=rgbd/mine:0.7,synthetic:0.3.
"""

from depthsense_jax.config import base_config


def get_config():
    config = base_config("synthetic")
    config.data.name = "rgbd/mine"  # built with `depthsense data build folder --name mine`
    config.init["from"] = "runs/quickstart"  # the synthetic default's workdir
    config.init.checkpoint = "best"
    config.optimizer.learning_rate = 5e-4  # a quarter of training from scratch
    config.optimizer.warmup_steps = 50
    config.optimizer.encoder_lr_multiplier = 0.1
    config.num_epochs = 3
    config.steps_per_epoch = 200
    config.checkpoint.every = 200
    return config
