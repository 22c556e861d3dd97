"""ESPNetv2 (Mehta et al., CVPR 2019) for ImageNet classification, at the paper's width scales s.

Layout follows the authors' reference (sacmehta/ESPNetv2, ``imagenet/Model.py`` and
``imagenet/cnn_utils.py``), the network of the paper's Fig. 1 (EESP unit) and Fig. 2 (strided
EESP with the shortcut to the input image); this code's forward matches the reference's exactly
for the same weights:

* stem: 3x3/2 conv-BN-PReLU to C0 channels.
* levels 2-5, each a down-sampler followed by 0, 3, 7, 3 EESP units.  Widths are
  C1..C4 = 2, 4, 8, 16 x base with base = 32 s rounded up to a multiple of 4 (C0 = min(base, 32)).
* EESP unit (K = 4 branches): grouped 1x1 conv-BN-PReLU to C/K; K depth-wise 3x3 convs with
  dilations 1..4, each capped so its receptive field stays within the level's limit
  (13, 11, 9, 7, 5); hierarchical feature fusion (each branch adds the previous one) and concat;
  BN-PReLU; grouped 1x1 conv-BN back to C; residual add; PReLU.
* down-sampler: a strided EESP to C_out - C_in channels, concatenated with a 3x3/2 average pool
  of its input, plus (levels 2-4) the input image average-pooled to the same size and passed
  through 3x3 conv-BN-PReLU (3 channels) and 1x1 conv-BN (C_out); then PReLU.
* head: depth-wise 3x3 conv-BN-PReLU, grouped (K) 1x1 conv-BN-PReLU to 1024 (1280 for s = 2),
  global average pool, dropout 0.2, FC with bias.

Convolutions have no bias; BN and PReLU (one slope per channel) are trainable.  The reference
also builds two modules its forward never uses: the PReLU of each strided EESP (the down-sampler
applies its own) and the image shortcut of the last down-sampler.  Those are left out here: they
carry no gradient, so DistributedDataParallel without ``find_unused_parameters`` would fail on
them.  With 1000 classes this gives, for s = 0.5 / 1.0 / 1.25 / 1.5 / 2.0, 1,239,722 /
1,666,942 / 1,961,542 / 2,310,190 / 3,491,934 parameters (the reference, unused modules included:
1,241,332 / 1,670,072 / 1,965,440 / 2,314,856 / 3,498,136).  The authors print 1.24 / 1.67 /
1.96 / 2.31 / 3.49 M with 28 / 86 / 123 / 169 / 285 MFLOPs at 224 px (the ImageNet table of the
reference repository's ``imagenet/README.md``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import GlobalPoolClassifier, kaiming_init_convs

SCALES = (0.5, 1.0, 1.25, 1.5, 2.0)  # the widths the authors trained and report
BRANCHES = 4
UNITS = (0, 3, 7, 3)  # EESP units after the down-samplers of levels 3, 4, 5 (level 2 has none)
RECEPTIVE_LIMITS = (13, 11, 9, 7, 5)  # largest branch receptive field, per spatial level
IMAGE_CHANNELS = 3


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.PReLU(cout))
    return nn.Sequential(*layers)


def _dilations(limit: int) -> list[int]:
    # Branch i is a 3x3 conv with dilation i + 1 (receptive field 3 + 2i); past the limit it falls
    # back to dilation 1.  Sorted so the fusion adds branches in order of receptive field.
    return sorted(i + 1 if 3 + 2 * i <= limit else 1 for i in range(BRANCHES))


class EESP(nn.Module):
    """Reduce (grouped 1x1) -> split into depth-wise dilated 3x3 branches -> hierarchical fusion
    -> merge (grouped 1x1).  Strided, it returns the merged map for the down-sampler to finish."""

    def __init__(self, cin: int, cout: int, stride: int, limit: int) -> None:
        super().__init__()
        n = cout // BRANCHES
        self.strided = stride != 1
        self.reduce = _conv_bn(cin, n, 1, groups=BRANCHES)
        self.branches = nn.ModuleList(
            nn.Conv2d(n, n, 3, stride, padding=d, dilation=d, groups=n, bias=False) for d in _dilations(limit))
        self.bn_act = nn.Sequential(nn.BatchNorm2d(cout), nn.PReLU(cout))
        self.merge = _conv_bn(cout, cout, 1, groups=BRANCHES, act=False)
        self.act = None if self.strided else nn.PReLU(cout)

    def forward(self, x):
        y = self.reduce(x)
        outs = [self.branches[0](y)]
        for branch in self.branches[1:]:
            outs.append(branch(y) + outs[-1])  # fusion removes the gridding of dilated convs
        y = self.merge(self.bn_act(torch.cat(outs, 1)))
        return y if self.strided else self.act(y + x)


class DownSampler(nn.Module):
    """Strided EESP || 3x3/2 average pool, concatenated, plus the optional image shortcut."""

    def __init__(self, cin: int, cout: int, limit: int, reinforce: bool) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.eesp = EESP(cin, cout - cin, stride=2, limit=limit)
        self.image = nn.Sequential(
            _conv_bn(IMAGE_CHANNELS, IMAGE_CHANNELS, 3),
            _conv_bn(IMAGE_CHANNELS, cout, 1, act=False),
        ) if reinforce else None
        self.act = nn.PReLU(cout)

    def forward(self, x, image):
        y = torch.cat([self.pool(x), self.eesp(x)], 1)
        if self.image is not None:
            y = y + self.image(image)
        return self.act(y)


class Body(nn.Module):
    """Everything before the global pool.  The image is average-pooled alongside the feature maps
    (the same 3x3/2 pool, so sizes match at every level) to feed the down-samplers' shortcuts."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.stem = _conv_bn(IMAGE_CHANNELS, widths[0], 3, stride=2)
        self.image_pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.levels = nn.ModuleList()
        for level in range(1, 5):  # levels 2-5 of the docstring; the last has no image shortcut
            cin, cout = widths[level - 1], widths[level]
            units = [DownSampler(cin, cout, RECEPTIVE_LIMITS[level - 1], reinforce=level < 4)]
            units += [EESP(cout, cout, 1, RECEPTIVE_LIMITS[level]) for _ in range(UNITS[level - 1])]
            self.levels.append(nn.ModuleList(units))
        self.head = nn.Sequential(
            _conv_bn(widths[4], widths[4], 3, groups=widths[4]),
            _conv_bn(widths[4], widths[5], 1, groups=BRANCHES),
        )

    def forward(self, x):
        image = self.image_pool(x)
        x = self.stem(x)
        for down, *units in self.levels:
            image = self.image_pool(image)
            x = down(x, image)
            for unit in units:
                x = unit(x)
        return self.head(x)


def _widths(scale: float) -> list[int]:
    base = math.ceil(int(32 * scale) / BRANCHES) * BRANCHES
    return [min(base, 32)] + [base * 2 ** i for i in range(1, 5)] + [1024 if scale <= 1.5 else 1280]


class ESPNetV2(GlobalPoolClassifier):
    def __init__(self, num_classes: int = 1000, scale: float = 1.0) -> None:
        if isinstance(scale, bool) or scale not in SCALES:
            raise ValueError(f"espnetv2 scale must be one of {list(SCALES)}, got {scale!r}")
        widths = _widths(scale)
        super().__init__(Body(widths), widths[5], num_classes)
        self.dropout = nn.Dropout(0.2)
        _init(self)

    def forward(self, x):
        return self.classifier(self.dropout(self.pool(self.features(x)).flatten(1)))


def _init(model: ESPNetV2) -> None:
    # The reference's init_params; BN and PReLU keep PyTorch's defaults, as there.
    kaiming_init_convs(model, mode="fan_out")
    nn.init.normal_(model.classifier.weight, std=0.001)
    nn.init.zeros_(model.classifier.bias)


def espnetv2(num_classes: int = 1000, scale: float = 1.0) -> ESPNetV2:
    return ESPNetV2(num_classes=num_classes, scale=scale)
