"""Model factories for `flopdispatch model MODULE:FUNCTION` (called with no arguments).

    flopdispatch model factories:convnet --input 8x3x32x32 --device cpu
"""
import torch.nn as nn


def convnet() -> nn.Module:
    """A small CIFAR-sized CNN: two conv blocks and a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    )
