"""Training configs (ml_collections `get_config()` files), installed with the package so that
`depthsense train --config synthetic` works from any folder."""
