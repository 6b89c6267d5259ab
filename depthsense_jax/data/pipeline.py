"""tf.data input pipeline for any dataset of the registry (ReDWeb, synthetic scenes).

Per host: read its share of the split, decode, turn the stored ground truth into the target
(the dataset's `decode_target`: depth larger = nearer and a validity code per pixel),
augment (training) or resize (evaluation), batch, prefetch. Training order is a pure
function of (seed, step): records are shuffled while still encoded and each example's
augmentation draws from a key made of the seed and its position in the stream, so
`start_step` resumes exactly by skipping encoded records (cheap) instead of replaying the
decoded stream.
"""

from __future__ import annotations

import os

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax._tf import keep_tf_off_accelerators
from depthsense_jax.data import registry
from depthsense_jax.data.target import INVALID, VALID

_IMAGE_FEATURES = ("image", "depth")


def _resize_all(image, depth, validity, height, width):
    image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    # Nearest for depth and validity: interpolating would blend valid depth with invalid
    # zeros, and validity codes are labels.
    depth = tf.image.resize(depth[..., None], [height, width], method="nearest")[..., 0]
    validity = tf.image.resize(validity[..., None], [height, width], method="nearest")[..., 0]
    return image, depth, validity


def _short_side_resize(image, depth, validity, short_side):
    shape = tf.cast(tf.shape(depth), tf.float32)
    factor = tf.cast(short_side, tf.float32) / tf.reduce_min(shape)
    height = tf.maximum(tf.cast(tf.math.ceil(shape[0] * factor), tf.int32), short_side)
    width = tf.maximum(tf.cast(tf.math.ceil(shape[1] * factor), tf.int32), short_side)
    return _resize_all(image, depth, validity, height, width)


def _crop(image, depth, validity, top, left, size):
    rows, cols = slice(top, top + size), slice(left, left + size)
    return image[rows, cols], depth[rows, cols], validity[rows, cols]


def augment(image, depth, validity, seed, size: int, cfg: ml_collections.ConfigDict):
    """Training augmentation of one example, deterministic in `seed` ((2,) int):
    random scale of the short side in [scale_min, scale_max] x size and random crop to
    size x size (image, depth and validity alike), horizontal flip of all three, colour
    jitter on the image only."""
    seeds = tf.random.experimental.stateless_split(seed, 8)
    scale = tf.random.stateless_uniform([], seeds[0], cfg.scale_min, cfg.scale_max)
    short_side = tf.cast(tf.math.ceil(scale * size), tf.int32)
    image, depth, validity = _short_side_resize(image, depth, validity, short_side)
    shape = tf.shape(depth)
    top = tf.random.stateless_uniform([], seeds[1], 0, shape[0] - size + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, shape[1] - size + 1, tf.int32)
    image, depth, validity = _crop(image, depth, validity, top, left, size)
    if cfg.flip:
        flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
        image, depth, validity = tf.cond(
            flip,
            lambda: (image[:, ::-1], depth[:, ::-1], validity[:, ::-1]),
            lambda: (image, depth, validity),
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
    return image, depth, validity


def evaluation_resize(image, depth, validity, size: int):
    """Short side to `size`, then the central size x size crop."""
    image, depth, validity = _short_side_resize(image, depth, validity, size)
    shape = tf.shape(depth)
    return _crop(image, depth, validity, (shape[0] - size) // 2, (shape[1] - size) // 2,
                 size)


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
    builder = registry.prepared_builder(config.data)
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
    decode_target = registry.decode_target(config.data)
    keep_sky = config.data.keep_sky

    def decode(example):
        image = example["image"]
        depth = example["depth"]
        if "image" in decoders:
            image = features["image"].decode_example(image)
        if "depth" in decoders:
            depth = features["depth"].decode_example(depth)
        depth, validity = decode_target(depth)
        return tf.image.convert_image_dtype(image, tf.float32), depth, validity

    def train_map(index, example):
        image, depth, validity = decode(example)
        seed = tf.stack([tf.cast(config.seed, tf.int64), index])
        image, depth, validity = augment(image, depth, validity, seed, size, config.data)
        return _pack(image, depth, validity, example["file_name"], size, keep_sky)

    def eval_map(example):
        image, depth, validity = evaluation_resize(*decode(example), size)
        return _pack(image, depth, validity, example["file_name"], size, keep_sky)

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


def _pack(image, depth, validity, file_name, size, keep_sky):
    mask = tf.equal(validity, VALID)
    out = {
        "image": tf.ensure_shape(image, [size, size, 3]),
        # Sky's depth is 0 as well: the farthest value, as the ranking losses need it.
        "depth": tf.ensure_shape(tf.where(mask, depth, 0.0), [size, size]),
        "mask": tf.ensure_shape(mask, [size, size]),
        "file_name": file_name,
    }
    if keep_sky:
        out["ordinal_mask"] = tf.ensure_shape(tf.not_equal(validity, INVALID), [size, size])
    return out


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
    (larger = nearer, 0 where invalid); mask (B, S, S) bool, True where the ground truth is
    valid (sky excluded); file_name (B,) bytes; with config.data.keep_sky also
    ordinal_mask (B, S, S) bool: mask plus the sky (depth 0), for the ranking losses only. B is
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
