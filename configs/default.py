"""Default configuration: every field documented. Other configs start from this one."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.encoder_depth = 50  # ResNet depth: 18, 34, 50 or 101
    config.model.width = 64  # encoder first-stage channels (64 = torchvision)
    config.model.fusion_channels = 256  # decoder channels F (the paper's 256)
    config.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16"
    # Path of torchvision ResNet weights (.pth, .safetensors or .npz) loaded into the encoder
    # before step 0, or "" for random initialisation.
    config.model.pretrained = ""

    config.image_size = 384  # training crop, pixels (a multiple of 32)
    config.batch_size = 8  # global batch
    config.seed = 0
    return config
