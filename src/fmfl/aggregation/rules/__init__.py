"""One module per aggregation rule, each naming its paper; ``fmfl.aggregation.catalog`` maps names."""

from fmfl.aggregation.rules._streaming import MeanStrategy
from fmfl.aggregation.rules.dp_fedavg import DpFedAvg
from fmfl.aggregation.rules.fedadagrad import FedAdagrad
from fmfl.aggregation.rules.fedadam import FedAdam
from fmfl.aggregation.rules.fedavg import FedAvg
from fmfl.aggregation.rules.fedavgm import FedAvgM
from fmfl.aggregation.rules.fedopt import FedOpt
from fmfl.aggregation.rules.fedyogi import FedYogi
from fmfl.aggregation.rules.krum import Krum
from fmfl.aggregation.rules.median import Median
from fmfl.aggregation.rules.multikrum import MultiKrum
from fmfl.aggregation.rules.trimmed_mean import TrimmedMean

__all__ = [
    "DpFedAvg",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedOpt",
    "FedYogi",
    "Krum",
    "MeanStrategy",
    "Median",
    "MultiKrum",
    "TrimmedMean",
]
