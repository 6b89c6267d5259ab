"""Fine-tune a Depth Anything checkpoint (V2 ViT-S, Hugging Face layout) on your own data.

    depthsense data build folder --name mine --images photos/ --depth depth/ --kind depth \\
        --depth-scale 1000
    depthsense train --config depth_anything_finetune --workdir runs/da-mine \\
        --config.data.name=rgbd/mine \\
        --config.init.from=checkpoints/Depth-Anything-V2-Small-hf

`init.from` is the folder of depth-anything/Depth-Anything-V2-Small-hf (config.json and
model.safetensors; download it yourself, nothing is fetched). Every weight is loaded; the
architecture in `model` must be the checkpoint's, and where it is not the error lists the
exact `--config.model.KEY=VALUE` overrides that make it so.

The recipe is the Depth Anything papers' and their fine-tuning script's
(metric_depth/train.py): AdamW (betas 0.9/0.999, weight decay 0.01), the encoder at 5e-6
and the decoder at ten times that, 518 px crops, the scale-and-shift-invariant loss with
gradient matching (MiDaS; V2 weighs them 1:2). On top of it, layer-wise learning-rate decay
0.9 in the ViT (BEiT/DINOv2 fine-tuning: the top block learns at the encoder's rate, each
block below 0.9x slower; --config.optimizer.layer_decay=1.0 turns it off). This package's
own losses stay listed at weight 0: --config.loss.weights.ranking=1.0 (or ssim,
edge_guided_ranking, smoothness) switches one on.
"""

from depthsense_jax.config import base_config
from depthsense_jax.models.depth_anything import variant_config


def get_config():
    config = base_config("base")
    # ViT-S, V2 (blocks 2, 5, 8, 11 to the head), position embeddings interpolated as
    # transformers does: the Hugging Face *-hf folders. Other checkpoints:
    #   the original .pth/.safetensors (depth_anything_v2_vits.pth):
    #       --config.model.pos_interpolation=dinov2
    #   ViT-B: --config.model.embed_dim=768 --config.model.num_heads=12
    #       --config.model.features=128 --config.model.out_channels=96,192,384,768
    #   ViT-L: --config.model.embed_dim=1024 --config.model.depth=24
    #       --config.model.num_heads=16 --config.model.features=256
    #       --config.model.out_channels=256,512,1024,1024 --config.model.layers=4,11,17,23
    #   V1 (the last four blocks): --config.model.layers=8,9,10,11 (ViT-S/B)
    # (init.from names the overrides a checkpoint needs when these are not its own.)
    config.model = variant_config("vits", version=2, pos_interpolation="transformers")

    config.data.name = "rgbd/mine"  # built with `depthsense data build folder --name mine`
    config.init["from"] = "checkpoints/Depth-Anything-V2-Small-hf"  # replace with yours
    config.init.checkpoint = "latest"  # (for a workdir as init.from)

    config.loss.weights.update({
        # The papers' (V2: 1:2). From a model whose prediction does not yet correlate with
        # the truth (random weights), gradient matching flattens it to a constant, which has
        # no gradient: start with --config.loss.weights.gradient_matching=0 (docs/results.md).
        "scale_shift": 1.0, "gradient_matching": 2.0,
        "ranking": 0.0, "edge_guided_ranking": 0.0, "ssim": 0.0, "smoothness": 0.0,
    })
    config.loss.options.gradient_scales = 4  # MiDaS's four scales

    config.image_size = 518  # the releases' crops (a multiple of the patch, 14)
    config.batch_size = 8  # their script: 2 a GPU; more with --config.optimizer.accumulate
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 5e-5  # the decoder's: 10x the encoder's
    config.optimizer.encoder_lr_multiplier = 0.1  # the encoder at 5e-6
    config.optimizer.layer_decay = 0.9  # and its lower blocks slower still (1.0 = off)
    config.optimizer.weight_decay = 0.01
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.warmup_steps = 100  # they decay from the start ((1 - t)^0.9)
    config.optimizer.final_lr_fraction = 0.0
    config.num_epochs = 5
    config.steps_per_epoch = 400
    config.checkpoint.every = 400
    config.log_every = 20
    return config
