"""MobileNet v1 (Howard et al. 2017), Table 1 body with the width multiplier alpha (Sec. 4.2).

Every layer is conv-BN-ReLU (Figure 3); convolutions carry no bias because BN's shift
replaces it.  The classifier is global average pooling + FC(1024*alpha -> classes).

Parameter convention: trainable = conv weights + BN scale/shift + FC weight and bias.
That gives 4,231,976 / 2,585,560 / 1,331,592 / 470,072 for alpha = 1 / 0.75 / 0.5 /
0.25, i.e. Table 6's 4.2M / 2.6M / 1.3M / 0.5M at the printed precision.  (Leaving
BN out would give 4.21M / 2.57M / 1.32M / 0.46M, which rounds the same way, so the
table does not pin down the convention; we count what PyTorch trains.)
"""

from __future__ import annotations

from torch import nn

from .common import GlobalPoolClassifier, check_multiplier, kaiming_init_convs

# Table 1 after the stem: (pointwise output channels, depthwise stride).  The paper
# prints "Conv dw / s2" for the second-to-last depthwise layer, but its input and
# output are both 7x7, so that layer has stride 1 (as in every reference implementation).
BODY = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),  # "5x" block
    (1024, 2), (1024, 1),
)
STEM_CHANNELS = 32


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 depthwise conv (one filter per channel) followed by a 1x1 pointwise conv."""
    return nn.Sequential(
        _conv_bn_relu(cin, cin, 3, stride=stride, groups=cin),
        _conv_bn_relu(cin, cout, 1),
    )


class MobileNetV1(GlobalPoolClassifier):
    def __init__(self, num_classes: int = 1000, alpha: float = 1.0) -> None:
        alpha = check_multiplier("mobilenet_v1", "alpha", alpha)
        width = lambda c: max(1, int(c * alpha))  # noqa: E731  (alpha*M, alpha*N of Sec. 4.2)
        cin = width(STEM_CHANNELS)
        layers = [_conv_bn_relu(3, cin, 3, stride=2)]
        for cout, stride in BODY:
            layers.append(depthwise_separable(cin, width(cout), stride))
            cin = width(cout)
        super().__init__(nn.Sequential(*layers), cin, num_classes)
        kaiming_init_convs(self, mode="fan_out", nonlinearity="relu")


def mobilenet_v1(num_classes: int = 1000, alpha: float = 1.0) -> MobileNetV1:
    return MobileNetV1(num_classes=num_classes, alpha=alpha)
