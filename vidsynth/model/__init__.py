"""The model stage everything starts from: the config, the assignment's cells, the video
generator, the noise it is driven by, and the fused inference form of the same model.

config.py     ModelConfig and the presets
layers.py     MyLinear, MyLSTMCell, MyGRUCell and the LSTM/GRU motion modules
generator.py  the image generator and VideoGenerator
noise.py      sample_noise: every random draw, made outside the model
inference.py  the CPU inference copy (fused recurrence, folded batch norm, channels-last)

Importing this package stays torch-free: config and noise need numpy only.
"""
