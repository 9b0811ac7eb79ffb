"""Human-readable description of a bundle (torch-free: used by ``fmfl inspect`` on any machine)."""

from __future__ import annotations

from pathlib import Path

from fmfl.bundle.manifest import SIGNATURE_FILE, Manifest


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def describe(manifest: Manifest, root: Path) -> str:
    m = manifest
    lines = [
        f"bundle    {root}  (id {m.bundle_id}, schema {m.schema})",
        f"model     {m.model['id']} @ {m.model['revision']}  [{m.model['family']}]",
        f"task      {m.task['kind']}" + (f", {len(m.labels)} labels: {', '.join(m.labels[:10])}"
                                         + (" ..." if len(m.labels) > 10 else "") if m.labels else ""),
        f"train     {m.train_spec}; optimizer {m.optimizer['name']} lr {m.optimizer['lr']}",
    ]
    if m.split["mode"] == "prefix":
        for tower, info in m.split["towers"].items():
            point, stages = info["point"], info["num_stages"]
            if point == 0:
                what = "no frozen prefix (trains from its first stage)"
            elif point >= stages:
                what = "fully frozen: the device caches its pooled embedding"
            else:
                what = f"frozen stages 0..{point - 1} of {stages}; trainable from block {point - 1}"
            lines.append(f"split     {tower}: {what}")
        feats = ", ".join(f"{f['name']}{tuple(f['shape'])}:{f['dtype']}" for f in m.split["features"])
        lines.append(f"features  per sample, cached on the device: {feats}")
    else:
        lines.append("split     none: the spec trains from the first block, so the whole model trains on device")
    lines.append(f"trainable {m.num_trainable:,} parameters in {len(m.trainable)} tensors (flat float32, "
                 f"{_mb(4 * m.num_trainable)} dense)")
    for t in m.trainable[:8]:
        lines.append(f"          {t.offset:>10,}  {t.name} {list(t.shape)}")
    if len(m.trainable) > 8:
        lines.append(f"          ... {len(m.trainable) - 8} more")
    pre = m.preprocessing
    if "image" in pre:
        img = pre["image"]
        lines.append(f"image     {img['size']}x{img['size']}, mean {img['mean']}, std {img['std']}")
    if "text" in pre:
        txt = pre["text"]
        lines.append(f"text      {txt['tokenizer_file']}, {txt['max_seq_len']} tokens, inputs {txt['input_names']}")
    total = sum(int(f["size"]) for f in m.files.values())
    lines.append(f"files     {len(m.files)}, {_mb(total)} in all:")
    for name, meta in sorted(m.files.items()):
        lines.append(f"          {int(meta['size']):>12,}  {name}")
    v = m.versions
    lines.append(f"versions  opset {v['opset']}, onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, fmfl {v['fmfl']}")
    lines.append("signature " + ("present (" + SIGNATURE_FILE + ")" if (root / SIGNATURE_FILE).exists() else "none"))
    return "\n".join(lines)
