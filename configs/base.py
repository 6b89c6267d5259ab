"""The base configuration, every field documented: the seed's model (ResNet-50 feature
fusion at 384 px). The other configs start from this one; the default of `depthsense train`
is configs/synthetic.py."""

import dataclasses

import ml_collections

from depthsense_jax.losses import LossOptions


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    # The model family (depthsense_jax.models.registry); the fields below are DepthNet's.
    config.model.name = "depthnet"
    config.model.encoder_depth = 50  # ResNet depth: 18, 34, 50 or 101
    config.model.width = 64  # encoder first-stage channels (64 = torchvision)
    config.model.fusion_channels = 256  # decoder channels F (the paper's 256)
    config.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16"
    # Pretrained encoder weights loaded before step 0 (what the family reads: for DepthNet,
    # torchvision ResNet weights as .pth, .safetensors or .npz, or `convert-weights`'
    # .msgpack), or "" for random initialisation.
    config.model.pretrained = ""

    config.loss = ml_collections.ConfigDict()
    # Weight of each loss by name (depthsense_jax.losses.LOSS_NAMES); 0 = not computed.
    # Every name is listed so that --config.loss.weights.NAME=W can switch any of them on.
    config.loss.weights = ml_collections.ConfigDict({
        "ranking": 1.0, "edge_guided_ranking": 1.0, "ssim": 1.0, "smoothness": 0.1,
        "scale_shift": 0.0, "gradient_matching": 0.0,
    })
    # Hyperparameters of the parts, all listed with the library's defaults (documented in
    # depthsense_jax.losses.LossOptions): num_pairs, ranking_sigma, alpha, hard_fraction,
    # num_anchors, edge_sigma, gradient_scales, ssim_padding.
    config.loss.options = ml_collections.ConfigDict(dataclasses.asdict(LossOptions()))

    config.data = ml_collections.ConfigDict()
    # TFDS name: "synthetic_scenes/v2" (the built-in scenes; "synthetic_scenes/160" is the
    # first, simpler layout), "redweb", ...
    config.data.name = "synthetic_scenes/v2"
    config.data.data_dir = ""  # TFDS data_dir ("" = ~/tensorflow_datasets)
    config.data.manual_dir = ""  # where the ReDWeb folder or archive is (redweb only)
    # Several datasets mixed for training, "NAME:WEIGHT,NAME:WEIGHT" (e.g. "synthetic:0.7,
    # rgbd/mine:0.3"); "" = config.data.name alone. Evaluation reads the first one.
    config.data.mixture = ""
    config.data.keep_sky = False  # sky (RD=255, rays that hit nothing): ranking losses only
    config.data.shuffle_buffer = 512  # examples (encoded) in the shuffle buffer
    config.data.scale_min = 1.0  # random scale of the short side, relative to image_size
    config.data.scale_max = 1.5
    config.data.flip = True  # random horizontal flips (image and depth together)
    config.data.color_jitter = 0.2  # brightness delta, contrast and saturation +- this
    # camera degradations, each on half the training images (0 = off; pipeline.degrade)
    config.data.blur = 0.0  # Gaussian blur, sigma up to this many pixels
    config.data.noise = 0.0  # Gaussian sensor noise, std up to this (image in [0, 1])
    config.data.jpeg = 0  # JPEG re-encoding at a quality from this to 95

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"  # "adamw" or "sgd"
    config.optimizer.learning_rate = 1e-4  # peak, after warmup
    config.optimizer.warmup_steps = 500
    config.optimizer.final_lr_fraction = 0.01  # cosine decays to this x the peak
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.weight_decay = 1e-4
    config.optimizer.momentum = 0.9  # sgd only
    config.optimizer.clip_norm = 1.0  # global gradient norm clipping
    config.optimizer.accumulate = 1  # micro-batches per update (gradient accumulation)
    # The encoder's learning rate as a fraction of the rest's: 0.1 fine-tunes it gently, 0
    # freezes it (its BatchNorm statistics too).
    config.optimizer.encoder_lr_multiplier = 1.0
    # Layer-wise learning-rate decay in the encoder (BEiT, DINOv2): layer k of L learns at
    # encoder_lr_multiplier * layer_decay ** (L - k), the output end at the multiplier, the
    # embeddings slowest. 1.0 = off; < 1 needs a family with layers (depth_anything's ViT).
    config.optimizer.layer_decay = 1.0

    # Start from a trained model: a training workdir (its checkpoint `init.checkpoint`:
    # latest, best or a step) or an export folder; all params and BatchNorm statistics are
    # loaded (a shape mismatch names the parameters). "" = random init (+ model.pretrained).
    config.init = ml_collections.ConfigDict()
    config.init["from"] = ""
    config.init.checkpoint = "latest"

    config.num_epochs = 20
    config.steps_per_epoch = 0  # 0 = train examples // batch_size
    config.log_every = 10  # steps between progress lines (and loss checks)

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every = 200  # steps between checkpoints (and at the end)
    config.checkpoint.keep = 3  # most recent checkpoints kept

    config.eval = ml_collections.ConfigDict()
    config.eval.num_pairs = 3000  # random pairs per image for validation WHDR
    config.eval.train_batches = 10  # batches of the train split scored for the table

    config.image_size = 384  # training crop, pixels (a multiple of the model's stride)
    config.batch_size = 8  # global batch
    config.seed = 0
    return config
