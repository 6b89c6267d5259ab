"""tf.data input pipeline for any of the TFDS builders (ReDWeb, synthetic scenes).

Per host: read its share of the split, decode, augment (training) or resize (evaluation),
batch, prefetch. Training order is a pure function of (seed, step): records are shuffled
while still encoded and each example's augmentation draws from a key made of the seed and
its position in the stream, so `start_step` resumes exactly by skipping encoded records
(cheap) instead of replaying the decoded stream.
"""

from __future__ import annotations

import os

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax.data import redweb  # noqa: F401  (registers the 'redweb' builder)

_IMAGE_FEATURES = ("image", "depth")


def keep_tf_off_accelerators() -> None:
    # TF is only the input pipeline: it must not take GPU memory that JAX needs.
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised; nothing to do then
        pass


def builder_for(data_config: ml_collections.ConfigDict):
    """The prepared TFDS builder of config.data; synthetic scenes are generated on first use,
    ReDWeb must have been built (`depthsense data build redweb`)."""
    name = data_config.name
    if name.startswith("synthetic_scenes"):
        from depthsense_jax.data import synthetic  # noqa: F401  (registers the builder)
    data_dir = os.path.expanduser(data_config.data_dir) if data_config.data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        raise ValueError(
            f"unknown dataset {name!r} (config.data.name): use 'synthetic_scenes/160' or "
            "'redweb'"
        ) from err
    if not builder.is_prepared():
        if name.startswith("synthetic_scenes"):
            builder.download_and_prepare()  # generated locally, no download
        else:
            raise ValueError(
                f"dataset {name!r} is not built in {builder.data_dir!r}: run `depthsense data "
                f"build redweb --manual-dir DIR` first (config.data.data_dir / manual_dir)"
            )
    return builder


def depth_and_mask(name: str, depth: tf.Tensor, keep_sky: bool = False):
    """Stored depth feature -> (depth (H, W) float32, larger = nearer; mask (H, W) bool).

    ReDWeb stores raw RD maps (uint8, (H, W, 1)); they become 1 - RD/255 as in
    `redweb.rd_to_depth`, sky (255) invalid unless `keep_sky`. Other datasets store relative
    inverse depth, invalid where 0 or not finite.
    """
    if name.startswith("redweb"):
        rd = tf.cast(depth[..., 0], tf.float32)
        value = 1.0 - rd / 255.0
        mask = tf.ones_like(rd, tf.bool) if keep_sky else tf.not_equal(depth[..., 0], 255)
        return value, mask
    value = tf.cast(depth, tf.float32)
    if value.shape.rank == 3:
        value = value[..., 0]
    mask = tf.math.is_finite(value) & (value > 0)
    return tf.where(mask, value, 0.0), mask


def _resize_all(image, depth, mask, height, width):
    image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    # Nearest for depth and mask: interpolating would blend valid depth with invalid zeros.
    depth = tf.image.resize(depth[..., None], [height, width], method="nearest")[..., 0]
    mask = tf.image.resize(tf.cast(mask, tf.uint8)[..., None], [height, width],
                           method="nearest")[..., 0] > 0
    return image, depth, mask


def _short_side_resize(image, depth, mask, short_side):
    shape = tf.cast(tf.shape(depth), tf.float32)
    factor = tf.cast(short_side, tf.float32) / tf.reduce_min(shape)
    height = tf.maximum(tf.cast(tf.math.ceil(shape[0] * factor), tf.int32), short_side)
    width = tf.maximum(tf.cast(tf.math.ceil(shape[1] * factor), tf.int32), short_side)
    return _resize_all(image, depth, mask, height, width)


def _crop(image, depth, mask, top, left, size):
    rows, cols = slice(top, top + size), slice(left, left + size)
    return image[rows, cols], depth[rows, cols], mask[rows, cols]


def augment(image, depth, mask, seed, size: int, cfg: ml_collections.ConfigDict):
    """Training augmentation of one example, deterministic in `seed` ((2,) int):
    random scale of the short side in [scale_min, scale_max] x size and random crop to
    size x size (image, depth and mask alike), horizontal flip of all three, colour jitter
    on the image only."""
    seeds = tf.random.experimental.stateless_split(seed, 8)
    scale = tf.random.stateless_uniform([], seeds[0], cfg.scale_min, cfg.scale_max)
    short_side = tf.cast(tf.math.ceil(scale * size), tf.int32)
    image, depth, mask = _short_side_resize(image, depth, mask, short_side)
    shape = tf.shape(depth)
    top = tf.random.stateless_uniform([], seeds[1], 0, shape[0] - size + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, shape[1] - size + 1, tf.int32)
    image, depth, mask = _crop(image, depth, mask, top, left, size)
    if cfg.flip:
        flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
        image, depth, mask = tf.cond(
            flip,
            lambda: (image[:, ::-1], depth[:, ::-1], mask[:, ::-1]),
            lambda: (image, depth, mask),
        )
    jitter = cfg.color_jitter
    if jitter > 0:
        image = tf.image.adjust_brightness(
            image, tf.random.stateless_uniform([], seeds[4], -jitter, jitter))
        image = tf.image.adjust_contrast(
            image, tf.random.stateless_uniform([], seeds[5], 1 - jitter, 1 + jitter))
        image = tf.image.adjust_saturation(
            image, tf.random.stateless_uniform([], seeds[6], 1 - jitter, 1 + jitter))
        image = tf.clip_by_value(image, 0.0, 1.0)
    return image, depth, mask


def evaluation_resize(image, depth, mask, size: int):
    """Short side to `size`, then the central size x size crop."""
    image, depth, mask = _short_side_resize(image, depth, mask, size)
    shape = tf.shape(depth)
    return _crop(image, depth, mask, (shape[0] - size) // 2, (shape[1] - size) // 2, size)


def make_tf_dataset(
    config: ml_collections.ConfigDict,
    split: str,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    start_step: int = 0,
    training: bool | None = None,
) -> tf.data.Dataset:
    """The host's tf.data pipeline; see `make_dataset`."""
    keep_tf_off_accelerators()
    process_index = 0 if process_index is None else process_index
    process_count = 1 if process_count is None else process_count
    training = split == "train" if training is None else training
    size = config.image_size
    if size % 32:
        raise ValueError(f"config.image_size must be a multiple of 32, got {size}")
    if config.batch_size % process_count:
        raise ValueError(
            f"config.batch_size={config.batch_size} is not divisible by {process_count} hosts"
        )
    host_batch = config.batch_size // process_count
    builder = builder_for(config.data)
    if split not in builder.info.splits:
        raise ValueError(f"{config.data.name} has no split {split!r}; it has "
                         f"{sorted(builder.info.splits)}")
    host_split = tfds.split_for_jax_process(
        split, process_index=process_index, process_count=process_count, drop_remainder=True
    )
    decoders = {k: tfds.decode.SkipDecoding() for k in _IMAGE_FEATURES
                if isinstance(builder.info.features[k], tfds.features.Image)}
    ds = builder.as_dataset(
        split=host_split, shuffle_files=training, decoders=decoders,
        # No autocache: every make_dataset builds a new pipeline, so a cache is never reused,
        # and a partly read one (the end-of-training picture) only warns.
        read_config=tfds.ReadConfig(shuffle_seed=config.seed, interleave_cycle_length=1,
                                    try_autocache=False),
    )
    features = builder.info.features
    name = config.data.name

    def decode(example):
        image = example["image"]
        depth = example["depth"]
        if "image" in decoders:
            image = features["image"].decode_example(image)
        if "depth" in decoders:
            depth = features["depth"].decode_example(depth)
        depth, mask = depth_and_mask(name, depth, config.data.keep_sky)
        return tf.image.convert_image_dtype(image, tf.float32), depth, mask

    def train_map(index, example):
        image, depth, mask = decode(example)
        seed = tf.stack([tf.cast(config.seed, tf.int64), index])
        image, depth, mask = augment(image, depth, mask, seed, size, config.data)
        return _pack(image, depth, mask, example["file_name"], size)

    def eval_map(example):
        image, depth, mask = evaluation_resize(*decode(example), size)
        return _pack(image, depth, mask, example["file_name"], size)

    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = max(2, os.cpu_count() or 2)
    if training:
        ds = ds.repeat().shuffle(config.data.shuffle_buffer, seed=config.seed,
                                 reshuffle_each_iteration=True)
        ds = ds.enumerate().skip(start_step * host_batch)
        ds = ds.map(train_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(host_batch, drop_remainder=True)
    else:
        ds = ds.map(eval_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(host_batch, drop_remainder=False)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _pack(image, depth, mask, file_name, size):
    return {
        "image": tf.ensure_shape(image, [size, size, 3]),
        "depth": tf.ensure_shape(tf.where(mask, depth, 0.0), [size, size]),
        "mask": tf.ensure_shape(mask, [size, size]),
        "file_name": file_name,
    }


def make_dataset(
    config: ml_collections.ConfigDict,
    split: str,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    start_step: int = 0,
    training: bool | None = None,
):
    """Iterator of host batches as dicts of NumPy arrays.

    image (B, S, S, 3) float32 in [0, 1]; depth (B, S, S) float32 relative inverse depth
    (larger = nearer, 0 where invalid); mask (B, S, S) bool; file_name (B,) bytes. B is
    config.batch_size / process_count and S config.image_size. Training (split "train" by
    default) repeats forever with shuffling and augmentation, full batches only; evaluation
    reads the split once in order (the last batch may be smaller). process_index/count pick
    this host's disjoint share of the split (default: one host). start_step: skip that many
    training batches exactly (resuming a run).
    """
    return tfds.as_numpy(make_tf_dataset(
        config, split, process_index=process_index, process_count=process_count,
        start_step=start_step, training=training,
    ))
