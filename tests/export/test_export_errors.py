"""Every way ``fmfl export`` refuses input: a clear one-line error and nothing left behind or changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmfl.cli import main

pytest.importorskip("torch")

from fmfl.models.trainable import TrainSpecError, parse_train_spec


def export(*args: str) -> list[str]:
    return ["export", *args]


def test_non_empty_out_is_refused_and_left_unchanged(tmp_path: Path, tiny_bert: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code = main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head", "--num-labels", "2",
                       "--out", str(out)))
    assert code == 2
    assert "exists and is not empty; pass --force" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_force_replaces_out(tmp_path: Path, tiny_bert: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head", "--num-labels", "2",
                       "--out", str(out), "--max-seq-len", "8", "--force")) == 0
    assert not (out / "old.txt").exists()
    assert (out / "manifest.json").is_file()


def test_unknown_model_says_what_it_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(export("--model", "no-such-model", "--task", "classify", "--train", "head", "--num-labels", "2",
                       "--out", str(tmp_path / "o")))
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown model 'no-such-model'" in err
    assert "minilm" in err
    assert not (tmp_path / "o").exists()


def test_hub_id_offline_says_how_to_get_the_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(export("--model", "google/vit-base-patch16-224", "--task", "classify", "--train", "head",
                       "--num-labels", "2", "--out", str(tmp_path / "o")))
    err = capsys.readouterr().err
    assert code == 2
    assert "google/vit-base-patch16-224" in err
    assert "local folder" in err


def test_lora_targets_that_match_nothing_list_existing_modules(tmp_path: Path, tiny_bert: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(export("--model", str(tiny_bert), "--task", "classify", "--train", "lora:r=4,targets=q_proj",
                       "--num-labels", "2", "--out", str(tmp_path / "o")))
    err = capsys.readouterr().err
    assert code == 2
    assert "LoRA targets q_proj match no module; module names that exist:" in err
    assert "query" in err
    assert "value" in err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--max-seq-len", "2", "--max-seq-len must be between 4 and 512"),
    ("--image-size", "8", "--image-size must be between 32 and 1024"),
    ("--lr", "-1", "--lr must be in (0, 10)"),
])
def test_invalid_sizes_are_refused(tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str],
                                   option: str, value: str, message: str) -> None:
    code = main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head", "--num-labels", "2",
                       "--out", str(tmp_path / "o"), option, value))
    assert code == 2
    assert message in capsys.readouterr().err


def test_classify_without_labels_and_wrong_task(tmp_path: Path, tiny_bert: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head",
                       "--out", str(tmp_path / "o"))) == 2
    assert "needs --labels FILE or --num-labels N" in capsys.readouterr().err
    assert main(export("--model", str(tiny_bert), "--task", "contrastive", "--train", "head",
                       "--out", str(tmp_path / "o"))) == 2
    assert "supports task(s) classify, not 'contrastive'" in capsys.readouterr().err


def test_labels_file_names_become_manifest_labels(tmp_path: Path, tiny_bert: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n\nbird\n")
    out = tmp_path / "o"
    assert main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head", "--labels", str(labels),
                       "--out", str(out), "--max-seq-len", "8")) == 0
    from fmfl.bundle import verify_bundle

    assert verify_bundle(out).labels == ["cat", "dog", "bird"]


def test_interrupted_export_leaves_no_half_bundle(tmp_path: Path, tiny_bert: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import fmfl.export.pipeline as pipeline

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "check_graphs", interrupted)
    out = tmp_path / "o"
    assert main(export("--model", str(tiny_bert), "--task", "classify", "--train", "head", "--num-labels", "2",
                       "--out", str(out))) == 130
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary folder


@pytest.mark.parametrize(("spec", "message"), [
    ("", "trains nothing"),
    ("everything", "unknown --train part 'everything'"),
    ("last:0", "needs K >= 1"),
    ("last:x", "needs an integer K"),
    ("lora:r=0", "LoRA needs r >= 1"),
    ("lora:rank=4", "unknown LoRA option 'rank'"),
])
def test_bad_train_specs(spec: str, message: str) -> None:
    with pytest.raises(TrainSpecError, match=message):
        parse_train_spec(spec)


def test_train_spec_round_trips() -> None:
    spec = parse_train_spec("head+lora:r=8,alpha=16,targets=query,value,layers=2")
    assert spec.head
    assert spec.lora is not None
    assert spec.lora.targets == ("query", "value")
    assert spec.lora.layers == 2
    assert parse_train_spec(str(spec)) == spec


def test_last_k_beyond_depth_is_refused(tmp_path: Path, tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(export("--model", str(tiny_bert), "--task", "classify", "--train", "last:5", "--num-labels", "2",
                       "--out", str(tmp_path / "o"))) == 2
    assert "last:5 but tower 'encoder' has only 2 blocks" in capsys.readouterr().err
