"""Dirichlet label-skew partitioning of a labelled data set across federated clients.

The non-IID model of Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data distribution for
federated visual classification" (arXiv:1909.06335): client label mixes drawn from a Dirichlet(alpha)
distribution; alpha -> 0 gives one class per client, alpha -> inf identical mixes. Sampled the way most
benchmarks do (Yurochkin et al. 2019; Wang et al. 2020 FedMA; Li et al. 2022 NIID-Bench): for each class, a
Dirichlet(alpha * 1_K) draw splits that class's samples across the K clients, so that every sample is
assigned exactly once. As in NIID-Bench, a client that already holds its fair share (N / K samples) gets no
more of later classes, which keeps client sizes from drifting far apart, and the draw is repeated until every
client holds at least ``min_size`` samples. When ``max_attempts`` draws all fail (tiny data, tiny alpha),
the last draw is repaired by moving samples from the largest clients to the short ones.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IndexArray = npt.NDArray[np.int64]


def dirichlet_partition(
    labels: npt.ArrayLike,
    num_clients: int,
    alpha: float,
    seed: int,
    min_size: int = 10,
    *,
    max_attempts: int = 100,
) -> list[IndexArray]:
    """Split sample indices across ``num_clients`` clients with Dirichlet(``alpha``) label skew.

    Returns one sorted int64 index array per client. The result is a deterministic function of the
    arguments; every index in ``range(len(labels))`` appears in exactly one client's array, and every client
    holds at least ``min_size`` indices.

    Raises:
        ValueError: ``labels`` is not a non-empty 1-D integer array, ``num_clients`` < 1, ``alpha`` <= 0,
            ``min_size`` < 1, or there are fewer than ``num_clients * min_size`` samples.
    """
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or label_array.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {label_array.shape}")
    if not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {label_array.dtype}")
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients}")
    if not (alpha > 0 and np.isfinite(alpha)):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    total = label_array.size
    if total < num_clients * min_size:
        raise ValueError(
            f"{total} samples cannot give {num_clients} clients at least {min_size} each; "
            "lower num_clients or min_size"
        )
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(label_array == value) for value in np.unique(label_array)]
    for _ in range(max_attempts):
        assignment = _draw(by_class, num_clients, alpha, total, rng)
        if min(len(client) for client in assignment) >= min_size:
            break
    else:
        assignment = _repair(assignment, min_size, rng)
    return [np.sort(np.asarray(client, dtype=np.int64)) for client in assignment]


def _draw(
    by_class: list[npt.NDArray[np.intp]],
    num_clients: int,
    alpha: float,
    total: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    clients: list[list[int]] = [[] for _ in range(num_clients)]
    fair_share = total / num_clients
    for members in by_class:
        shuffled = rng.permutation(members)
        proportions = rng.dirichlet(np.full(num_clients, alpha))
        sizes = np.array([len(client) for client in clients])
        proportions = np.where(sizes < fair_share, proportions, 0.0)
        if proportions.sum() <= 0.0:
            # Every client is full (possible only by rounding): fall back to the unmasked draw.
            proportions = rng.dirichlet(np.full(num_clients, alpha))
        proportions /= proportions.sum()
        cuts = (np.cumsum(proportions)[:-1] * len(shuffled)).astype(np.int64)
        for client, part in zip(clients, np.split(shuffled, cuts), strict=True):
            client.extend(part.tolist())
    return clients


def _repair(clients: list[list[int]], min_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Move random samples from the largest clients to those below ``min_size``."""
    clients = [list(client) for client in clients]
    for short in range(len(clients)):
        while len(clients[short]) < min_size:
            donor = max(range(len(clients)), key=lambda k: (len(clients[k]), -k))
            taken = clients[donor].pop(int(rng.integers(len(clients[donor]))))
            clients[short].append(taken)
    return clients
