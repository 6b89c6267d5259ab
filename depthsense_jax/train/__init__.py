"""Training: state and optimizer, sharding over a device mesh, jitted steps, the loop, its
checkpoints, evaluation and writers."""
