"""The head the compact CNNs share: features -> global average pool -> fully-connected classifier."""

from __future__ import annotations

from torch import nn

# Width multipliers the papers use run from 0.25 to 2; past this a model is a memory accident.
MAX_MULTIPLIER = 4.0


def check_multiplier(model: str, name: str, value: object) -> float:
    """A width multiplier in (0, MAX_MULTIPLIER]; ValueError says what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_MULTIPLIER:
        raise ValueError(f"{model} {name} must be a number in (0, {MAX_MULTIPLIER:g}], got {value!r}")
    return float(value)


def check_int(model: str, name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{model} {name} must be an integer from {low} to {high}, got {value!r}")
    return value


class GlobalPoolClassifier(nn.Module):
    """features -> global average pool -> fully-connected classifier.  Global pooling is also
    what keeps every model's parameter count independent of the input size.

    Submodules are ``features``, ``pool`` and ``classifier``, registered in that order (the
    order ``modules()`` and init loops visit them).  Subclasses build their feature
    extractor and pass it here, then initialise weights as their paper prescribes.
    """

    def __init__(self, features: nn.Sequential, channels: int, num_classes: int, bias: bool = True) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes, bias=bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def kaiming_init_convs(module: nn.Module, **kwargs) -> None:
    """``kaiming_normal_(weight, **kwargs)`` on every Conv2d in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, **kwargs)
