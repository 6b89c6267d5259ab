"""Independent references for tests and `depthsense bench ... --compare`: plain PyTorch
(torch_depthnet: DepthNet in torchvision's layout; torch_losses: the PyTorch loss formulas
people use). Not part of the installed package."""
