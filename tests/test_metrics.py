"""The metrics: the angle between two arrays, and the delta-angle probe (Fig 4b), which must leave
the network's state alone."""

from __future__ import annotations

import numpy as np
import pytest

from minibp import get_rule
from minibp.losses import SoftmaxCrossEntropy
from minibp.metrics import angle
from minibp.models import resnet20


def test_angle_is_accurate_near_zero_and_ninety():
    a = np.array([1.0, 0.0])
    assert angle(a, np.array([0.0, 2.0])) == pytest.approx(90)
    assert angle(a, -a) == pytest.approx(180)
    tiny = np.array([1.0, 1e-9])
    assert angle(a, tiny) == pytest.approx(np.degrees(1e-9), rel=1e-6)
    assert np.isnan(angle(a, np.zeros(2)))


def test_delta_angle_probe_leaves_batchnorm_statistics_alone():
    from minibp.metrics import delta_angles

    net = resnet20((1, 8, 8), 10, width=2)
    rule = get_rule("fa")
    net.init_feedback(rule, np.random.default_rng(1))
    before = {k: v.copy() for k, v in net.buffer_arrays().items()}
    x = np.random.default_rng(2).random((16, 1, 8, 8), dtype=np.float32)
    angles = delta_angles(net, rule, x, np.arange(16) % 10, SoftmaxCrossEntropy())
    assert len(angles) == len(net.weight_layers) - 1 and all(0 < a < 180 for a in angles)
    for k, v in net.buffer_arrays().items():
        np.testing.assert_array_equal(v, before[k])
