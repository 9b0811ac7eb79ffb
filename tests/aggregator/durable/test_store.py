"""GlobalStore: atomic versioned saves, verified loads, and a resume from log + store that matches
an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.sparse_updates import random_update

from fmfl.aggregation import make_strategy
from fmfl.aggregator import GlobalStore, StoreError, UpdateLog

SIZE = 300


def test_save_and_load_latest(tmp_path: Path) -> None:
    store = GlobalStore(tmp_path / "models")
    assert store.latest() is None
    w1, w2 = np.arange(SIZE, dtype=np.float32), -np.arange(SIZE, dtype=np.float32)
    store.save(1, w1, server_state={"m": np.ones(3), "rounds": np.array(1)})
    store.save(2, w2)
    entry, loaded = GlobalStore(tmp_path / "models").load_weights()
    assert entry.version == 2
    assert np.array_equal(loaded, w2)
    assert loaded.dtype == np.float32
    assert np.array_equal(store.load_weights(1)[1], w1)
    state = store.load_state(1)
    assert set(state) == {"m", "rounds"}
    assert np.array_equal(state["m"], np.ones(3))
    assert store.load_state() == {}
    assert not [p for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name]  # no temp files left


def test_versions_must_increase(tmp_path: Path) -> None:
    store = GlobalStore(tmp_path)
    store.save(3, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="not newer than the stored 3"):
        store.save(3, np.zeros(4, np.float32))


def test_corrupt_weights_are_detected(tmp_path: Path) -> None:
    store = GlobalStore(tmp_path)
    entry = store.save(1, np.zeros(SIZE, np.float32))
    path = tmp_path / entry.weights_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="SHA-256"):
        store.load_weights()


def test_missing_and_garbage_index_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no global model saved"):
        GlobalStore(tmp_path).load_weights()
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a valid model index"):
        GlobalStore(tmp_path).latest()
    (tmp_path / "index.json").write_text(json.dumps({"versions": []}))
    with pytest.raises(StoreError, match="version 9 not in"):
        GlobalStore(tmp_path).load_weights(9)


_SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from fmfl.aggregator import GlobalStore

    store = GlobalStore(sys.argv[1])
    for v in range(1, 100_000):
        store.save(v, np.full(200_000, v, dtype=np.float32), server_state={"m": np.full(10, v, np.float64)})
        print(v, flush=True)
    """
)


def test_sigkill_during_saves_leaves_a_loadable_latest(tmp_path: Path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "m")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    done = [int(proc.stdout.readline()) for _ in range(5)]
    os.kill(proc.pid, signal.SIGKILL)
    done += [int(line) for line in proc.stdout if line.strip()]
    proc.wait(timeout=30)
    proc.stdout.close()
    entry, weights = GlobalStore(tmp_path / "m").load_weights()
    assert entry.version >= max(done)  # every save that returned is there (one more may have landed)
    assert np.array_equal(weights, np.full(200_000, entry.version, np.float32))
    assert float(GlobalStore(tmp_path / "m").load_state()["m"][0]) == entry.version


@pytest.mark.parametrize("rule", ["fedyogi", "trimmed-mean"])
def test_resume_after_crash_matches_uninterrupted_run(tmp_path: Path, rule: str) -> None:
    # Prepare: three rounds of updates; the reference run never stops.
    rng = np.random.default_rng(11)
    g0 = rng.standard_normal(SIZE).astype(np.float32)
    rounds = [[random_update(rng, SIZE, 30, scale=0.1) for _ in range(6)] for _ in range(3)]
    ref, g = make_strategy(rule), g0
    for ups in rounds:
        ref.begin_round(g)
        for i, u in enumerate(ups):
            ref.accept(u, 10.0 + i, f"c{i}")
        g = ref.aggregate()
    # Execute: the gateway's loop (check, log, accept, save), "killed" 4 updates into round 3.
    store, log = GlobalStore(tmp_path / "models"), UpdateLog(tmp_path / "wal.db")
    store.save(0, g0)
    live = make_strategy(rule)
    for r, ups in enumerate(rounds, start=1):
        live.begin_round(store.load_weights()[1])
        for i, u in enumerate(ups if r < 3 else ups[:4]):
            live.check(u, 10.0 + i, f"c{i}")
            log.append(round=r, client_id=f"c{i}", update_id=f"r{r}-c{i}", weight=10.0 + i,
                       indices=u.indices, values=u.values, size=SIZE)  # fmt: skip
            live.accept(u, 10.0 + i, f"c{i}")
        if r < 3:
            store.save(r, live.aggregate(), server_state=live.state_dict())
    log.close()
    del live
    # Restart: latest global + server state from the store, the open round from the log.
    store, log = GlobalStore(tmp_path / "models"), UpdateLog(tmp_path / "wal.db")
    entry, weights = store.load_weights()
    resumed = make_strategy(rule)
    resumed.load_state_dict(store.load_state())
    resumed.begin_round(weights)
    report = log.replay(entry.version + 1, resumed)
    for i, u in enumerate(rounds[2][4:], start=4):
        resumed.accept(u, 10.0 + i, f"c{i}")
    # Assert
    assert report.fed == [f"r3-c{i}" for i in range(4)]
    assert np.array_equal(resumed.aggregate(), g)
    log.close()
