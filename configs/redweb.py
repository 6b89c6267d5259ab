"""The seed's setup on ReDWeb: ResNet-50 feature fusion at 384 px, 300 random pairs per image
for the ranking loss plus edge-guided pairs (Xian 2020), SSIM and edge-aware smoothness.

Build the data first: `depthsense data build redweb --manual-dir DIR` (DIR holds ReDWeb_V1 or
its archive). Put torchvision ImageNet ResNet-50 weights in model.pretrained to start from
them, as the papers do: `--config.model.pretrained=resnet50.pth`.
"""

from depthsense_jax.config import base_config


def get_config():
    config = base_config("base")
    config.data.name = "redweb"
    config.model.encoder_depth = 50
    config.model.width = 64
    config.model.fusion_channels = 256
    config.loss.weights.update({"ranking": 1.0, "edge_guided_ranking": 1.0, "ssim": 1.0,
                                "smoothness": 0.1, "scale_shift": 0.0,
                                "gradient_matching": 0.0})
    config.loss.options.num_pairs = 300
    config.loss.options.num_anchors = 100
    config.image_size = 384
    config.batch_size = 8
    config.num_epochs = 30
    config.optimizer.learning_rate = 1e-4
    config.optimizer.warmup_steps = 500
    config.checkpoint.every = 500
    config.log_every = 20
    return config
