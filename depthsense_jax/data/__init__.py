"""Datasets: ReDWeb, built-in synthetic scenes, and the tf.data input pipeline."""
