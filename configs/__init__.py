"""Training configs (ml_collections `get_config()` files). This folder is installed as the
package `depthsense_jax.configs` (never as a top-level `configs`), so that `depthsense train
--config synthetic` works from any folder; a config builds on another with
`depthsense_jax.config.base_config("base")`."""
