"""Human-readable description of a bundle (torch-free: used by ``fmfl inspect`` on any machine)."""

from __future__ import annotations

from pathlib import Path

from fmfl.bundle.graph_ops import graph_ops
from fmfl.bundle.manifest import SIGNATURE_FILE, Manifest

#: the bundle's graphs in the order a device uses them, with what each is for
GRAPH_ROLES = (
    ("prefix_model", "frozen prefix, run once per sample"),
    ("train_step_model", "train step: loss, output, gradients"),
    ("eval_model", "eval: loss, output"),
    ("inference_model", "inference: task outputs"),
)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def describe(manifest: Manifest, root: Path) -> str:
    m = manifest
    lines = [
        f"bundle    {root}  (id {m.bundle_id}, schema {m.schema})",
        f"model     {m.model['id']} @ {m.model['revision']}  [{m.model['family']}]",
        f"task      {m.task['kind']}" + (f", {len(m.labels)} labels: {', '.join(m.labels[:10])}"
                                         + (" ..." if len(m.labels) > 10 else "") if m.labels else ""),
        f"train     {m.train_spec}; optimizer {_optimizer(m.optimizer)} (numpy, on the device)",
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
    lines += _graphs(m, root)
    total = sum(int(f["size"]) for f in m.files.values())
    lines.append(f"files     {len(m.files)}, {_mb(total)} in all:")
    for name, meta in sorted(m.files.items()):
        lines.append(f"          {int(meta['size']):>12,}  {name}")
    v = m.versions
    lines.append(f"versions  needs onnxruntime >= {v.get('min_onnxruntime', '?')}; exported with onnxruntime "
                 f"{v['onnxruntime']}, onnx {v['onnx']}, torch {v.get('torch', '?')}, fmfl {v['fmfl']}")
    lines.append("signature " + ("present (" + SIGNATURE_FILE + ")" if (root / SIGNATURE_FILE).exists() else "none"))
    return "\n".join(lines)


def _optimizer(spec: dict[str, object]) -> str:
    return " ".join([str(spec["name"])] + [f"{k} {v}" for k, v in spec.items() if k != "name"])


def _graphs(m: Manifest, root: Path) -> list[str]:
    """One line per graph: role, opset, node count and operator types (read without the onnx package)."""
    lines = []
    for role, what in GRAPH_ROLES:
        name = m.artifacts.get(role)
        if not name or not (root / name).is_file():
            continue
        ops = graph_ops(root / name)
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(ops.opsets.items()))
        types = sorted({t for _, t in ops.ops})
        lines.append(f"graph     {name}: {what}; opset {opsets}; {ops.num_nodes} nodes, {len(types)} op types")
        lines.append(f"          {' '.join(types)}")
    gate = m.graph.get("train_step", {}).get("gate")
    if gate:
        lines.append(f"gate      gradients checked against torch at batch {gate['batch_sizes']}: largest |difference| "
                     f"{gate['max_abs_diff']:.2g} (rtol {gate['rtol']:g}, atol {gate['atol']:g})")
    return lines
