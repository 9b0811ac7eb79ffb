"""Attacks for the simulation harness, one module each, naming its paper; ``make_attack`` maps names."""

from __future__ import annotations

from typing import Any

from fmfl.simulation.attacks.alie import ALittleIsEnough, alie_z_max
from fmfl.simulation.attacks.base import Attack, NoAttack
from fmfl.simulation.attacks.label_flip import LabelFlip, flip_labels
from fmfl.simulation.attacks.scaling import Scaling
from fmfl.simulation.attacks.sign_flip import SignFlip

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls for cls in (NoAttack, SignFlip, Scaling, ALittleIsEnough, LabelFlip)
}


def make_attack(name: str, **options: Any) -> Attack:
    """The attack called ``name`` (see ``ATTACKS``), built with ``options``."""
    try:
        cls = ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; choose one of: {', '.join(ATTACKS)}") from None
    return cls(**options)


__all__ = [
    "ATTACKS",
    "ALittleIsEnough",
    "Attack",
    "LabelFlip",
    "NoAttack",
    "Scaling",
    "SignFlip",
    "alie_z_max",
    "flip_labels",
    "make_attack",
]
