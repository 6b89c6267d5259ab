"""Training configs (ml_collections `get_config()` files). This folder is installed as the
package `depthsense_jax.configs` (never as a top-level `configs`), so that `depthsense train
--config synthetic` works from any folder and configs build on each other with
`from depthsense_jax.configs import default`."""
