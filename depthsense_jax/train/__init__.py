"""Training: state, optimizer, sharding over a device mesh, jitted train and eval steps."""
