"""DenseNet-BC for CIFAR (Huang et al. 2017, Sec. 3 "Implementation Details", Table 2).

* initial 3x3 conv with 2k output channels (k = growth rate; Sec. 3 for DenseNet-BC).
* 3 dense blocks of n = (depth - 4) / 6 bottleneck layers each; a layer is
  BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k) ("B") and its output is concatenated to
  its input.  (depth counts 2 convs per layer, the first conv, 2 transition convs
  and the FC: 6n + 4.)
* transition between blocks: BN-ReLU-Conv1x1(floor(theta * m)) + 2x2 average pool,
  with compression theta = 0.5 ("C").
* head: BN-ReLU, global average pool, FC.

Convolutions have no bias.  k=12/depth=100 gives 769,162 parameters with 10 classes
(Table 2: 0.8M), k=24/depth=250 15,324,406 (15.3M), k=40/depth=190 25,624,430 (25.6M).
"""

from __future__ import annotations

import torch
from torch import nn

from .common import GlobalPoolClassifier, check_int, kaiming_init_convs

COMPRESSION = 0.5  # theta of DenseNet-C
BOTTLENECK_WIDTH = 4  # the 1x1 conv produces 4k feature maps (DenseNet-B)


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
    )


class BottleneckLayer(nn.Module):
    def __init__(self, cin: int, growth_rate: int) -> None:
        super().__init__()
        self.h = nn.Sequential(
            _bn_relu_conv(cin, BOTTLENECK_WIDTH * growth_rate, 1),
            _bn_relu_conv(BOTTLENECK_WIDTH * growth_rate, growth_rate, 3),
        )

    def forward(self, x):
        return torch.cat((x, self.h(x)), dim=1)


def dense_block(cin: int, layers: int, growth_rate: int) -> nn.Sequential:
    return nn.Sequential(*(BottleneckLayer(cin + i * growth_rate, growth_rate) for i in range(layers)))


def transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_bn_relu_conv(cin, cout, 1), nn.AvgPool2d(2))


class DenseNetBC(GlobalPoolClassifier):
    def __init__(self, num_classes: int = 10, growth_rate: int = 12, depth: int = 100) -> None:
        # The paper's DenseNet-BC runs to depth 250 and growth rate 40.
        if check_int("densenet_bc", "depth", depth, 10, 250) and (depth - 4) % 6:
            raise ValueError(f"densenet_bc depth must be 6n+4 with n >= 1, got {depth!r}")
        check_int("densenet_bc", "growth_rate", growth_rate, 1, 64)
        n = (depth - 4) // 6
        c = 2 * growth_rate
        layers = [nn.Conv2d(3, c, 3, padding=1, bias=False)]
        for block in range(3):
            layers.append(dense_block(c, n, growth_rate))
            c += n * growth_rate
            if block < 2:
                out = int(COMPRESSION * c)  # floor(theta * m)
                layers.append(transition(c, out))
                c = out
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        kaiming_init_convs(self)


def densenet_bc(num_classes: int = 1000, growth_rate: int = 12, depth: int = 100) -> DenseNetBC:
    # 1000 like every registry builder; CIFAR runs pass 10 (conf/model/densenet_bc.yaml).
    return DenseNetBC(num_classes=num_classes, growth_rate=growth_rate, depth=depth)
