"""Regenerate ``training/model/backbones_meta.json``: each backbone's facts that need a build.

Listing backbones in the CLI, the tuner or the app must not build 40 models, so parameter counts,
feature widths and block names are measured here once (random weights, no download) and read
from the JSON afterwards. It also checks each registered ``min_size`` by building one pixel below
it, which must fail.

    nice python -m bench.backbone_meta                 # every backbone (a few minutes)
    python -m bench.backbone_meta --only VGG16 ResNet50  # update some entries in place
    python -m bench.backbone_meta --no-top ConvNeXtXLarge  # leave params_with_top null
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

import keras

from training.model.backbones import META_PATH, BackboneSpec, get_backbone, list_backbones
from training.model.blocks import unfreezable_blocks


def measure_backbone(spec: BackboneSpec, with_top: bool = True) -> dict[str, Any]:
    """Build ``spec`` with random weights and record the facts the meta JSON keeps.

    Parameter counts do not depend on the input size without the top, so the backbone is built
    at ``min_size`` (cheap); the top is built at ``default_size`` (its classifier may).
    """
    model = spec.build(spec.min_size, weights=None)
    meta: dict[str, Any] = {
        "min_size": spec.min_size,
        "params_backbone": model.count_params(),
        "params_with_top": None,
        "feature_dim": int(model.output.shape[-1]),
        "num_layers": len(model.layers),
        "blocks": [block.name for block in unfreezable_blocks(model, spec)],
    }
    del model
    if with_top:
        meta["params_with_top"] = spec.build(
            spec.default_size, None, include_top=True
        ).count_params()
    return meta


def _below_min_fails(name: str) -> bool:
    spec = get_backbone(name)
    constructor = getattr(keras.applications, spec.constructor)
    size = spec.min_size - 1
    try:
        constructor(weights=None, include_top=False, input_shape=(size, size, 3))
    except ValueError:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen backbones and write the JSON; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="backbone names to re-measure")
    parser.add_argument("--no-top", nargs="*", default=[], help="skip the include_top build")
    parser.add_argument("--output", type=Path, default=META_PATH)
    args = parser.parse_args(argv)

    specs = [get_backbone(n) for n in args.only] if args.only else list_backbones()
    no_top = {get_backbone(n).name for n in args.no_top}
    existing = {}
    if args.only and args.output.exists():
        existing = json.loads(args.output.read_text(encoding="utf-8")).get("backbones", {})
    problems = 0
    for spec in specs:
        start = time.perf_counter()
        meta = measure_backbone(spec, with_top=spec.name not in no_top)
        if not _below_min_fails(spec.name):
            problems += 1
            print(f"WARNING {spec.name}: builds at {spec.min_size - 1} px, min_size is too high")
        existing[spec.name] = meta
        keras.backend.clear_session()
        gc.collect()
        print(
            f"{spec.name:18s} {len(meta['blocks']):3d} blocks  {meta['params_backbone']:>11,d} "
            f"params  top {meta['params_with_top'] or 0:>11,d}  feat {meta['feature_dim']:5d}  "
            f"{time.perf_counter() - start:5.1f}s",
            flush=True,
        )
    order = [s.name for s in list_backbones()]
    document = {
        "generated_by": "python -m bench.backbone_meta",
        "keras_version": keras.__version__,
        "backbones": {name: existing[name] for name in order if name in existing},
    }
    args.output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(document['backbones'])} backbones)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
