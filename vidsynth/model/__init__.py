"""The model stage everything starts from: the config (config.py), the assignment's cells and
motion modules (layers.py), the video generator (generator.py), the noise it is driven by
(noise.py) and its fused CPU inference form (inference.py).

Importing this package stays torch-free: config and noise need numpy only.
"""
