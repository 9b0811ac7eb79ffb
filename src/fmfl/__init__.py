"""fmfl: federated fine-tuning of compact multimodal foundation models on edge devices.

The package is split by where code runs: ``models`` and ``export`` on the workstation (torch),
``edge_client`` on devices and ``aggregator`` on gateways (both torch-free), and ``protocol``
(numpy only), the contract between device and gateway.
"""

__version__ = "0.1.0"
