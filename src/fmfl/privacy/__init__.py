"""Client-level differential privacy: accountants, adaptive clipping, local (on-device) privatization.

- ``accountant.epsilon``: epsilon of DP-FedAvg after some rounds, from Google's ``dp-accounting``
  (gateway extra; imported only when called).
- ``gaussian.gaussian_epsilon``: the exact epsilon of composed Gaussian mechanisms without sampling,
  standard library only (the device uses it; the tests use it as the closed-form reference).
- ``adaptive_clip.AdaptiveClip``: Andrew et al.'s quantile-tracking clip norm.
- ``local.privatize`` / ``local.LocalDp``: clip and noise a delta on the device.

The DP-FedAvg aggregation rule itself is ``fmfl.aggregation.rules.dp_fedavg``. See docs/privacy.md.
"""
