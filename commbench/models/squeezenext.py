"""SqueezeNext (Gholami et al. 2018), 1.0-SqNxt-23 and its width multipliers.

Layout follows the authors' Caffe reference (amirgholami/SqueezeNext,
``1.0-SqNxt-23/train_val.prototxt`` and ``2.0-SqNxt-23/train_val.prototxt``):

* stem: 7x7/2 conv, 64 filters, no padding; 3x3/2 max pool (Caffe pools round up,
  hence ``ceil_mode=True``).  The stem is *not* scaled by the width multiplier.
* 4 stages of SqNxt blocks, [6, 6, 8, 1] blocks (21 blocks + stem conv + FC = 23
  layers), widths C = 32/64/128/256 x width.
* SqNxt block (Sec. 3): two-stage squeeze 1x1 (C/2) -> 1x1 (C/4), separable
  3x1 (C/2) -> 1x3 (C/2), expansion 1x1 (C); every conv is conv-BN-ReLU.
  The first block of a stage carries the stride (on its first 1x1) and a
  projection shortcut (1x1 conv-BN-ReLU); the sum is followed by ReLU.
* head: 1x1 conv to 128 (not scaled), global average pool, FC without bias.

Parameter convention: convolutions have no bias (``bias_term: false``), BN
scale/shift are trainable, the FC has no bias -- exactly the prototxt, which gives
717,280 parameters for 1.0-SqNxt-23, the paper's "0.72M".
"""

from __future__ import annotations

from torch import nn

from .common import GlobalPoolClassifier, check_multiplier

STAGE_BLOCKS = {23: (6, 6, 8, 1)}  # Table/Fig. of 1.0-SqNxt-23; only depth 23 is reproduced
STAGE_WIDTHS = (32, 64, 128, 256)
STEM_CHANNELS = 64
HEAD_CHANNELS = 128


def _conv_bn_relu(cin: int, cout: int, kernel, stride: int = 1, padding=0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SqNxtBlock(nn.Module):
    """Two-stage bottleneck + low-rank (3x1, 1x3) separable filters + 1x1 expansion."""

    def __init__(self, cin: int, c: int, stride: int, project: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(cin, c // 2, 1, stride=stride),       # squeeze 1
            _conv_bn_relu(c // 2, c // 4, 1),                   # squeeze 2
            _conv_bn_relu(c // 4, c // 2, (3, 1), padding=(1, 0)),
            _conv_bn_relu(c // 2, c // 2, (1, 3), padding=(0, 1)),
            _conv_bn_relu(c // 2, c, 1),                        # expand
        )
        self.shortcut = _conv_bn_relu(cin, c, 1, stride=stride) if project else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class SqueezeNext(GlobalPoolClassifier):
    def __init__(self, num_classes: int = 1000, width: float = 1.0, depth: int = 23) -> None:
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"squeezenext depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}")
        width = check_multiplier("squeezenext", "width", width)
        layers = [
            _conv_bn_relu(3, STEM_CHANNELS, 7, stride=2),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
        ]
        cin = STEM_CHANNELS
        for stage, (blocks, base) in enumerate(zip(STAGE_BLOCKS[depth], STAGE_WIDTHS)):
            c = int(base * width)
            if c < 4:
                raise ValueError(f"squeezenext width {width!r} leaves stage {stage + 1} with {c} channels")
            for b in range(blocks):
                stride = 2 if (b == 0 and stage > 0) else 1
                layers.append(SqNxtBlock(cin, c, stride, project=(b == 0)))
                cin = c
        layers.append(_conv_bn_relu(cin, HEAD_CHANNELS, 1))
        super().__init__(nn.Sequential(*layers), HEAD_CHANNELS, num_classes, bias=False)
        _init(self)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)  # the prototxt's "xavier" filler


def squeezenext(num_classes: int = 1000, width: float = 1.0, depth: int = 23) -> SqueezeNext:
    return SqueezeNext(num_classes=num_classes, width=width, depth=depth)
