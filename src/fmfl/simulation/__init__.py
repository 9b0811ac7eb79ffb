"""In-process simulation of federated rounds for attack and privacy studies (everything real except MQTT).

``build_population`` prepares a federation once (bundle, shards through the frozen prefix, test-set referee);
``run_simulation(population, SimulationConfig(...))`` runs one configuration on it. Attacks live in
``fmfl.simulation.attacks``. See docs/simulation.md.
"""

from fmfl.simulation.attacks import ATTACKS, Attack, make_attack
from fmfl.simulation.harness import (
    RoundLog,
    SimulationConfig,
    SimulationResult,
    UpdateContext,
    UpdateTransform,
    choose_malicious,
    run_simulation,
)
from fmfl.simulation.population import ClientShard, Population, build_population

__all__ = [
    "ATTACKS",
    "Attack",
    "ClientShard",
    "Population",
    "RoundLog",
    "SimulationConfig",
    "SimulationResult",
    "UpdateContext",
    "UpdateTransform",
    "build_population",
    "choose_malicious",
    "make_attack",
    "run_simulation",
]
