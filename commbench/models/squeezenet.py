"""SqueezeNet 1.0 with the bypass connections of Iandola et al. 2016, Section 6 / Figure 2.

The vanilla part is torchvision's ``squeezenet1_0`` untouched (same module tree, same
state_dict keys), so its parameter layout is exactly Table 1 of the paper (1,248,424
parameters).  The bypasses only change ``forward``:

* simple bypass: identity added around fire3, fire5, fire7, fire9, the Fire modules
  whose input and output channel counts match.  No parameters are added, which is
  why Table 3 lists the same 4.8 MB for vanilla and simple bypass.
* complex bypass: additionally a 1x1 convolution (with bias, as Caffe convolutions
  have by default) on the bypass around fire2, fire4, fire6, fire8, where the
  channel counts differ.  Those convolutions live in ``self.bypass`` so the vanilla
  keys stay identical to torchvision's.  They add 341,248 parameters (1,589,672 in
  all, 6.4 MB at fp32); Table 3 prints 7.7 MB, which 1x1 bypasses around these four
  Fire modules cannot reach -- the paper does not detail the difference.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.squeezenet import SqueezeNet

# torchvision's squeezenet1_0 ``features`` indices of the Fire modules (Table 1 names).
FIRE_INDEX = {
    "fire2": 3, "fire3": 4, "fire4": 5, "fire5": 7,
    "fire6": 8, "fire7": 9, "fire8": 10, "fire9": 12,
}
# Section 6: identity bypass where in == out channels (Figure 2, middle).
SIMPLE_BYPASS = ("fire3", "fire5", "fire7", "fire9")
# Figure 2, right: 1x1-conv bypass where channels differ; (in, out) channels from Table 1.
COMPLEX_BYPASS = {"fire2": (96, 128), "fire4": (128, 256), "fire6": (256, 384), "fire8": (384, 512)}


class SqueezeNetBypass(SqueezeNet):
    """SqueezeNet 1.0 macroarchitecture with simple or complex bypass (Figure 2)."""

    def __init__(self, bypass: str, num_classes: int = 1000, dropout: float = 0.5) -> None:
        if bypass not in ("simple", "complex"):
            raise ValueError(f"bypass must be 'simple' or 'complex', got {bypass!r}")
        super().__init__(version="1_0", num_classes=num_classes, dropout=dropout)
        self.bypass_kind = bypass
        self._identity_at = {FIRE_INDEX[n] for n in SIMPLE_BYPASS}
        self.bypass = nn.ModuleDict()
        if bypass == "complex":
            for name, (cin, cout) in COMPLEX_BYPASS.items():
                conv = nn.Conv2d(cin, cout, kernel_size=1)
                nn.init.kaiming_uniform_(conv.weight)  # same init as torchvision's Fire convs
                nn.init.zeros_(conv.bias)
                self.bypass[name] = conv
        self._conv_at = {FIRE_INDEX[n]: n for n in self.bypass}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.features):
            if i in self._identity_at:
                x = layer(x) + x  # element-wise add of the Fire output and its input
            elif i in self._conv_at:
                x = layer(x) + self.bypass[self._conv_at[i]](x)
            else:
                x = layer(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def squeezenet_simple_bypass(num_classes: int = 1000) -> SqueezeNetBypass:
    return SqueezeNetBypass("simple", num_classes=num_classes)


def squeezenet_complex_bypass(num_classes: int = 1000) -> SqueezeNetBypass:
    return SqueezeNetBypass("complex", num_classes=num_classes)
