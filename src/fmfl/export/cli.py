"""``fmfl export``, ``fmfl inspect`` and ``fmfl keygen``.

Only argparse at import time: ``inspect`` and ``keygen`` run torch-free (on a device or gateway too);
``export`` imports torch when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="turn a model into a signed ONNX Runtime training bundle (workstation)")
    p.add_argument("--model", required=True, help="preset (minilm, effnet-lite0, dual-encoder), hub id or folder")
    p.add_argument("--task", required=True, choices=("classify", "contrastive"))
    p.add_argument("--train", required=True, help="head | last:K | lora:r=8,alpha=16,targets=query,value,layers=2 "
                   "(parts joined with +)")
    p.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", type=Path, help="file with one class label per line")
    labels.add_argument("--num-labels", type=int, help="number of classes (labels become 0..N-1)")
    p.add_argument("--max-seq-len", type=int, default=64, help="text length in tokens (default 64)")
    p.add_argument("--image-size", type=int, help="image side in pixels (default: the model's own)")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    p.add_argument("--lr", type=float, default=1e-3, help="default local learning rate recorded in the bundle")
    p.add_argument("--sign-key", type=Path, help="Ed25519 private key from `fmfl keygen`")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(handler=run_export)

    p = sub.add_parser("inspect", help="show what a bundle holds and verify its hashes (and signature)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--trust-key", type=Path, help="Ed25519 public key: also require a valid signature")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(handler=run_inspect)

    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles (KEY and KEY.pub)")
    p.add_argument("key", type=Path, help="private key path to write; the public key goes to KEY.pub")
    p.set_defaults(handler=run_keygen)


def run_export(args: argparse.Namespace) -> int:
    from fmfl.export.pipeline import ExportConfig, export_bundle, read_labels
    from fmfl.export.report import describe

    cfg = ExportConfig(
        model=args.model,
        task=args.task,
        train=args.train,
        out=args.out,
        labels=read_labels(args.labels) if args.labels else None,
        num_labels=args.num_labels,
        max_seq_len=args.max_seq_len,
        image_size=args.image_size,
        optimizer=args.optimizer,
        lr=args.lr,
        sign_key=args.sign_key,
        force=args.force,
    )
    result = export_bundle(cfg)
    print(describe(result.manifest, result.path))
    print(f"exported in {result.seconds:.1f} s")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from fmfl.bundle.verify import verify_bundle
    from fmfl.export.report import describe

    manifest = verify_bundle(args.bundle, args.trust_key)
    if args.json:
        print(manifest.to_json().decode(), end="")
        return 0
    print(describe(manifest, args.bundle))
    print("verified: every file matches its sha256" + (f"; signature valid for {args.trust_key}"
                                                       if args.trust_key else ""))
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from fmfl.bundle.signing import generate_keypair

    private, public = generate_keypair(args.key)
    print(f"private key: {private} (keep it on the workstation)\npublic key:  {public} (give it to devices)")
    return 0
