"""One module per aggregation rule, each naming its paper; ``fmfl.aggregator.registry`` maps names."""

from fmfl.aggregator.rules.dp_fedavg import DpFedAvg
from fmfl.aggregator.rules.fedadagrad import FedAdagrad
from fmfl.aggregator.rules.fedadam import FedAdam
from fmfl.aggregator.rules.fedavg import FedAvg
from fmfl.aggregator.rules.fedavgm import FedAvgM
from fmfl.aggregator.rules.fedopt import FedOpt
from fmfl.aggregator.rules.fedyogi import FedYogi
from fmfl.aggregator.rules.krum import Krum
from fmfl.aggregator.rules.median import Median
from fmfl.aggregator.rules.multikrum import MultiKrum
from fmfl.aggregator.rules.trimmed_mean import TrimmedMean

__all__ = [
    "DpFedAvg",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedYogi",
    "Krum",
    "Median",
    "MultiKrum",
    "TrimmedMean",
]
