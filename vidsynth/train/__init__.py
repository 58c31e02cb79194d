"""MoCoGAN training: data loading, the two critics, the training loop and checkpoints."""
