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

import math
import os

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from depthsense_jax._tf import keep_tf_off_accelerators
from depthsense_jax.data import registry
from depthsense_jax.data.target import INVALID, VALID


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
    size x size (image, depth and validity alike), horizontal flip of all three; on the image
    only: colour jitter, then (each on half the images, when switched on) Gaussian blur,
    sensor noise and JPEG re-encoding (`degrade`)."""
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
    image = degrade(image, seeds[7], cfg)
    return image, depth, validity


def _gaussian_kernel(sigma: tf.Tensor, radius: int) -> tf.Tensor:
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(x / tf.maximum(sigma, 1e-3)))
    return k / tf.reduce_sum(k)


def degrade(image: tf.Tensor, seed: tf.Tensor, cfg: ml_collections.ConfigDict) -> tf.Tensor:
    """Camera degradations of one image (H, W, 3) float32 in [0, 1], deterministic in
    `seed`, each drawn for half the images: Gaussian blur of sigma U(0, cfg.blur) pixels,
    Gaussian sensor noise of std U(0, cfg.noise), JPEG re-encoding at quality
    U(cfg.jpeg, 95). A setting of 0 switches its degradation off."""
    seeds = tf.random.experimental.stateless_split(seed, 6)

    def coin(k):
        return tf.random.stateless_uniform([], seeds[k]) < 0.5

    if cfg.get("blur", 0.0) > 0:
        radius = max(1, int(math.ceil(2.5 * cfg.blur)))
        sigma = tf.random.stateless_uniform([], seeds[1], 0.0, cfg.blur)
        k = _gaussian_kernel(sigma, radius)
        kernel = tf.tile(k[:, None, None, None], [1, 1, 3, 1])

        def blur(img):
            padded = tf.pad(img[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                            mode="SYMMETRIC")
            out = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
            out = tf.nn.depthwise_conv2d(out, tf.transpose(kernel, [1, 0, 2, 3]),
                                         [1, 1, 1, 1], "VALID")
            return out[0]

        image = tf.cond(coin(0), lambda: blur(image), lambda: image)
    if cfg.get("noise", 0.0) > 0:
        std = tf.random.stateless_uniform([], seeds[3], 0.0, cfg.noise)
        noisy = image + std * tf.random.stateless_normal(tf.shape(image), seeds[4])
        image = tf.where(coin(2), tf.clip_by_value(noisy, 0.0, 1.0), image)
    if cfg.get("jpeg", 0) > 0:
        quality = int(cfg.jpeg)
        image = tf.cond(
            coin(5),
            lambda: tf.image.stateless_random_jpeg_quality(image, quality, 95, seeds[5]),
            lambda: image)
    return image


def evaluation_resize(image, depth, validity, size: int):
    """Short side to `size`, then the central size x size crop."""
    image, depth, validity = _short_side_resize(image, depth, validity, size)
    shape = tf.shape(depth)
    return _crop(image, depth, validity, (shape[0] - size) // 2, (shape[1] - size) // 2,
                 size)


MIXTURE_BLOCK = 1024  # mixture choices are drawn in blocks of this many examples


def mixture(data_config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
    """[(dataset name, weight)] of `data_config.mixture` ("synthetic:0.7,rgbd/mine:0.3",
    weights normalised to 1), or [(data_config.name, 1.0)] when it is empty."""
    text = data_config.get("mixture", "")
    if not text:
        return [(data_config.name, 1.0)]
    parts = []
    for entry in text.split(","):
        name, sep, weight = entry.strip().rpartition(":")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not name or not value > 0:
            raise ValueError(f"config.data.mixture entry {entry.strip()!r}: expected "
                             "NAME:WEIGHT with a positive weight")
        registry.lookup(name)
        parts.append((name, value))
    total = sum(w for _, w in parts)
    return [(name, w / total) for name, w in parts]


def _component_config(data_config: ml_collections.ConfigDict, name: str):
    component = data_config.copy_and_resolve_references()
    component.name = name
    return component


def train_examples(config: ml_collections.ConfigDict) -> int:
    """Training examples of the config's dataset (all of a mixture's datasets together)."""
    return sum(registry.prepared_builder(_component_config(config.data, name))
               .info.splits["train"].num_examples for name, _ in mixture(config.data))


def _choice_block(seed: int, block: int, weights: np.ndarray) -> np.ndarray:
    """The datasets of examples block * MIXTURE_BLOCK ... + MIXTURE_BLOCK - 1 of a mixture:
    a pure function of (seed, block), so any position of the stream can be recomputed."""
    uniform = np.random.default_rng([seed, 7919, block]).random(MIXTURE_BLOCK)
    return np.searchsorted(np.cumsum(weights)[:-1], uniform, side="right").astype(np.int64)


def mixture_counts(weights: list[float], seed: int, start: int) -> np.ndarray:
    """How many of the first `start` examples of a mixture each dataset gave: (K,) int64
    (where each dataset's own stream resumes)."""
    weights = np.asarray(weights, np.float64)
    counts = np.zeros(len(weights), np.int64)
    full, rest = divmod(start, MIXTURE_BLOCK)
    for block in range(full):
        counts += np.bincount(_choice_block(seed, block, weights), minlength=len(weights))
    if rest:
        counts += np.bincount(_choice_block(seed, full, weights)[:rest],
                              minlength=len(weights))
    return counts


def _choices(weights: list[float], seed: int, start: int) -> tf.data.Dataset:
    """The mixture's dataset index of every example from position `start` on."""
    weights = np.asarray(weights, np.float64)
    first, skip = divmod(start, MIXTURE_BLOCK)

    def block(b):
        return _choice_block(seed, int(b), weights)

    blocks = tf.data.Dataset.range(first, np.iinfo(np.int64).max).map(
        lambda b: tf.ensure_shape(tf.numpy_function(block, [b], tf.int64), [MIXTURE_BLOCK]))
    return blocks.unbatch().skip(skip)


def _examples(config: ml_collections.ConfigDict, name: str, split: str, *, host_split_args,
              training: bool, start_example: int, seed_offset: int) -> tf.data.Dataset:
    """One dataset's unbatched, decoded, augmented (or resized) examples, tagged with
    "source": `name`."""
    data_config = _component_config(config.data, name)
    prepared = registry.prepared(data_config)
    builder = prepared.builder
    if split not in builder.info.splits:
        raise ValueError(f"{name} has no split {split!r}; it has {sorted(builder.info.splits)}")
    host_split = tfds.split_for_jax_process(split, drop_remainder=True, **host_split_args)
    features = builder.info.features
    # Images stay encoded through the shuffle (cheap to skip when resuming); decoded in map.
    decoders = {k: tfds.decode.SkipDecoding() for k, f in features.items()
                if isinstance(f, tfds.features.Image)}
    seed = config.seed + seed_offset
    ds = builder.as_dataset(
        split=host_split, shuffle_files=training, decoders=decoders,
        # No autocache: every make_dataset builds a new pipeline, so a cache is never reused,
        # and a partly read one (the end-of-training picture) only warns.
        read_config=tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1,
                                    try_autocache=False),
    )
    size, keep_sky = config.image_size, config.data.keep_sky

    def decode(example):
        example = dict(example)
        for key in decoders:
            example[key] = features[key].decode_example(example[key])
        depth, validity = prepared.decode_target(example)
        return tf.image.convert_image_dtype(example["image"], tf.float32), depth, validity

    def train_map(index, example):
        image, depth, validity = decode(example)
        key = tf.stack([tf.cast(seed, tf.int64), index])
        image, depth, validity = augment(image, depth, validity, key, size, config.data)
        return _pack(image, depth, validity, example["file_name"], size, keep_sky, name)

    def eval_map(example):
        image, depth, validity = evaluation_resize(*decode(example), size)
        return _pack(image, depth, validity, example["file_name"], size, keep_sky, name)

    if training:
        ds = ds.repeat().shuffle(config.data.shuffle_buffer, seed=seed,
                                 reshuffle_each_iteration=True)
        ds = ds.enumerate().skip(start_example)
        return ds.map(train_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.map(eval_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


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
    # Any positive crop: that it fits the model (a multiple of its stride) is the training
    # step's check (train.steps.validate), which knows the model.
    if config.image_size < 1:
        raise ValueError(f"config.image_size must be positive, got {config.image_size}")
    if config.batch_size % process_count:
        raise ValueError(
            f"config.batch_size={config.batch_size} is not divisible by {process_count} hosts"
        )
    host_batch = config.batch_size // process_count
    host_split_args = {"process_index": process_index, "process_count": process_count}
    parts = mixture(config.data)
    start = start_step * host_batch
    if training and len(parts) > 1:
        weights = [w for _, w in parts]
        counts = mixture_counts(weights, config.seed, start)
        datasets = [_examples(config, name, split, host_split_args=host_split_args,
                              training=True, start_example=int(count), seed_offset=index)
                    for index, ((name, _), count) in enumerate(zip(parts, counts, strict=True))]
        ds = tf.data.Dataset.choose_from_datasets(datasets, _choices(weights, config.seed, start))
    else:
        # Evaluation reads the first dataset of a mixture.
        ds = _examples(config, parts[0][0], split, host_split_args=host_split_args,
                       training=training, start_example=start, seed_offset=0)
    ds = ds.batch(host_batch, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = max(2, os.cpu_count() or 2)
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _pack(image, depth, validity, file_name, size, keep_sky, source):
    mask = tf.equal(validity, VALID)
    out = {
        "image": tf.ensure_shape(image, [size, size, 3]),
        # Sky's depth is 0 as well: the farthest value, as the ranking losses need it.
        "depth": tf.ensure_shape(tf.where(mask, depth, 0.0), [size, size]),
        "mask": tf.ensure_shape(mask, [size, size]),
        "file_name": file_name,
        "source": tf.constant(source),
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
    valid (sky excluded); file_name (B,) bytes; source (B,) bytes, the dataset each example
    came from (config.data.mixture mixes several); with config.data.keep_sky also
    ordinal_mask (B, S, S) bool: mask plus the sky (depth 0), for the ranking losses only. B is
    config.batch_size / process_count and S config.image_size. Training (split "train" by
    default) repeats forever with shuffling and augmentation, full batches only; evaluation
    reads the split once in order (the last batch may be smaller). process_index/count pick
    this host's disjoint share of the split (default: one host). config.data.mixture
    ("NAME:WEIGHT,...") mixes several datasets for training: each example's dataset is drawn
    by weight from a stream that is a pure function of the seed, and each dataset keeps its
    own position, so resuming stays exact; evaluation reads the first dataset. start_step:
    skip that many training batches exactly (resuming a run).
    """
    return tfds.as_numpy(make_tf_dataset(
        config, split, process_index=process_index, process_count=process_count,
        start_step=start_step, training=training,
    ))
