"""Speed benchmarks (`depthsense speed`): the losses (`losses`), the model's inference and
training step (`model`), the input pipeline and the scene renderer (`input`), the whole
training loop (`train`); shared timing, FLOPs, MFU and JSON records in `timing`."""
