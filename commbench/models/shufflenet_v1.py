"""ShuffleNet v1 (Zhang et al. 2018), Table 1, with groups g and scale s ("ShuffleNet s x").

* stem: 3x3/2 conv 24 + BN + ReLU, 3x3/2 max pool.
* Stages 2-4 with 4/8/4 ShuffleNet units; the first unit of a stage has stride 2,
  an average-pooled (3x3/2) shortcut and concatenation (Figure 2c), the others an
  identity shortcut and addition (Figure 2b).
* unit: 1x1 group conv (bottleneck = 1/4 of the unit's output channels) + BN + ReLU,
  channel shuffle, 3x3 depthwise conv + BN (no ReLU, Sec. 3.2), 1x1 group conv + BN,
  then ReLU after the add/concat.  The stride-2 unit's branch outputs
  ``out - in`` channels so the concat has ``out``.
* Stage 2's first pointwise layer is an ordinary conv: its input (24 channels) is
  too small for groups (Sec. 3.3).
* global average pool + FC (with bias).

Scaling: the paper's s x multiplies every filter count of 1x (stem included) by s.
For g=1 and g=3 (and every g at 1x) the scaled counts already divide by g; where they
do not (e.g. g=4 at 0.5x: bottleneck 34), channels are rounded to the nearest
multiple of g, which the group convolutions require.  1x g=3 has 1,865,728 parameters
with 1000 classes (the commonly quoted "1.9M").
"""

from __future__ import annotations

import torch
from torch import nn

from .common import GlobalPoolClassifier, check_multiplier, kaiming_init_convs

# Table 1: output channels of Stages 2, 3, 4 for each number of groups (1x).
STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_UNITS = (4, 8, 4)
STEM_CHANNELS = 24


def _multiple_of(x: float, g: int) -> int:
    """Nearest multiple of g (at least g); a no-op when x already is one."""
    return max(g, int(x / g + 0.5) * g)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape channels to (g, n), transpose to (n, g), flatten back (Sec. 3.1)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, mid: int, groups: int, stride: int, group_first: bool) -> None:
        super().__init__()
        self.groups = groups
        self.stride = stride
        branch_out = cout - cin if stride == 2 else cout
        g1 = groups if group_first else 1
        self.gconv1 = nn.Sequential(
            nn.Conv2d(cin, mid, 1, groups=g1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.dwconv = nn.Sequential(
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False), nn.BatchNorm2d(mid))
        self.gconv2 = nn.Sequential(
            nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False), nn.BatchNorm2d(branch_out))
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.gconv1(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.gconv2(self.dwconv(out))
        if self.stride == 2:
            return self.relu(torch.cat((self.shortcut(x), out), dim=1))
        return self.relu(out + x)


class ShuffleNetV1(GlobalPoolClassifier):
    def __init__(self, num_classes: int = 1000, groups: int = 3, scale: float = 1.0) -> None:
        if groups not in STAGE_CHANNELS:
            raise ValueError(f"shufflenet_v1 groups must be one of {sorted(STAGE_CHANNELS)}, got {groups!r}")
        scale = check_multiplier("shufflenet_v1", "scale", scale)
        g = groups
        cin = _multiple_of(STEM_CHANNELS * scale, g)
        layers = [
            nn.Sequential(nn.Conv2d(3, cin, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(cin), nn.ReLU(inplace=True)),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        for stage, (units, base) in enumerate(zip(STAGE_UNITS, STAGE_CHANNELS[g])):
            cout = _multiple_of(base * scale, g)
            mid = _multiple_of(cout / 4, g)
            if cout <= cin:
                raise ValueError(f"shufflenet_v1 scale {scale!r} is too small for groups={g}")
            for u in range(units):
                first = u == 0
                layers.append(ShuffleUnit(cin, cout, mid, g, stride=2 if first else 1,
                                          group_first=not (stage == 0 and first)))
                cin = cout
        super().__init__(nn.Sequential(*layers), cin, num_classes)
        kaiming_init_convs(self, mode="fan_out", nonlinearity="relu")


def shufflenet_v1(num_classes: int = 1000, groups: int = 3, scale: float = 1.0) -> ShuffleNetV1:
    return ShuffleNetV1(num_classes=num_classes, groups=groups, scale=scale)
