"""The CNN lecture's VGG table for any backbone: per-layer activations, memory, params, FLOPs.

CS231n walks VGG16 layer by layer ("CONV3-64: [224x224x64] memory: 224*224*64=3.2M params:
(3*3*3)*64") to show where memory goes (early convolutions) and where parameters go (late fully
connected layers). This module computes the same table from the real Keras model, so a user can
see why a batch does not fit, or which blocks hold the parameters they are about to unfreeze.

Conventions (per image, forward pass):

- activations: number of values in a layer's output; the total skips pure views (Flatten,
  Reshape, Identity, linear Activation), which reuse their input's memory; the input counts, as
  in the lecture. Memory is activations × ``dtype_bytes``.
- params: ``layer.count_params()`` (biases and BatchNorm statistics included); nested models
  (ConvNeXt's stem) are flattened into their layers; non-layer ops (``x + y``) have none.
- FLOPs: 2 per multiply-add. Convolution: 2·k_h·k_w·(c_in/groups)·c_out·H_out·W_out, plus one
  per output for the bias; depthwise: 2·k_h·k_w·c_in·multiplier·H_out·W_out (+bias); separable:
  depthwise + pointwise; dense: 2·in·units per position (+bias). BatchNormalization and the
  Normalization preprocessing layer: 2 per element (scale and shift, statistics fixed);
  LayerNormalization: 5 per element (mean, variance, normalise, scale, shift); pooling:
  pool_h·pool_w per output (global pooling: one per input value); merges: (inputs − 1) per
  output; padding, cropping, concatenation, dropout and views: 0; any other layer (activations,
  rescaling, scales): 1 per output value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import keras

from training.model.backbones import get_backbone

_VIEWS = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Identity)
_FREE = (
    keras.layers.InputLayer,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.Concatenate,
    keras.layers.Dropout,
)
_POOLS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
_GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


@dataclass(frozen=True)
class LayerRow:
    """One line of the table; ``counted`` is False for views left out of the activation total."""

    name: str
    type: str
    output_shape: tuple[int | None, ...]
    activations: int
    memory_bytes: int
    params: int
    flops: int
    counted: bool = True


@dataclass
class ArchitectureReport:
    """Per-layer rows and totals for one backbone at one input size (per image)."""

    name: str
    image_size: int
    include_top: bool
    dtype_bytes: int
    rows: list[LayerRow]
    trainable_params: int
    notes: list[str] = field(default_factory=list)

    @property
    def total_activations(self) -> int:
        return sum(r.activations for r in self.rows if r.counted)

    @property
    def total_memory_bytes(self) -> int:
        return self.total_activations * self.dtype_bytes

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def training_memory(
        self, batch_size: int, optimizer_slots: int = 2, trainable_params: int | None = None
    ) -> dict[str, int]:
        """Estimate the memory of one training step, the lecture's way.

        Activations are kept from the forward pass for the backward pass (×2, as the slide
        says); gradients and optimizer state (``optimizer_slots`` per weight: 2 for Adam, 1 for
        momentum SGD) exist only for trainable weights. ``trainable_params`` overrides the
        report's (everything trainable) for a frozen or partly unfrozen backbone. Framework
        workspace and fragmentation come on top, so treat the total as a lower bound.
        """
        trainable = self.trainable_params if trainable_params is None else trainable_params
        memory = {
            "activations_bytes": self.total_memory_bytes * batch_size * 2,
            "params_bytes": self.total_params * self.dtype_bytes,
            "gradients_bytes": trainable * self.dtype_bytes,
            "optimizer_bytes": optimizer_slots * trainable * self.dtype_bytes,
        }
        return {"batch_size": batch_size, **memory, "total_bytes": sum(memory.values())}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: settings, totals, rows and notes."""
        rows = [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows]
        return {
            "name": self.name,
            "image_size": self.image_size,
            "include_top": self.include_top,
            "dtype_bytes": self.dtype_bytes,
            "totals": {
                "activations": self.total_activations,
                "memory_bytes": self.total_memory_bytes,
                "params": self.total_params,
                "trainable_params": self.trainable_params,
                "flops": self.total_flops,
            },
            "rows": rows,
            "notes": list(self.notes),
        }


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(tensor.shape[1:])


def _count(shape: tuple[int | None, ...]) -> int:
    return math.prod(d or 0 for d in shape)


def _bias(op: Any, out_values: int) -> int:
    return out_values if getattr(op, "use_bias", False) else 0


def layer_flops(op: Any, input_shapes: list[tuple[int | None, ...]], output_shape: tuple) -> int:
    """FLOPs of one layer or op for one image, by the conventions in the module docstring."""
    out = _count(output_shape)
    cin = input_shapes[0][-1] if input_shapes and input_shapes[0] else 0
    if isinstance(op, keras.layers.DepthwiseConv2D):
        spatial = out // (output_shape[-1] or 1)
        macs = math.prod(op.kernel_size) * cin * op.depth_multiplier * spatial
        return 2 * macs + _bias(op, out)
    if isinstance(op, keras.layers.SeparableConv2D):
        spatial = out // (output_shape[-1] or 1)
        inner = cin * op.depth_multiplier
        macs = math.prod(op.kernel_size) * inner * spatial + inner * op.filters * spatial
        return 2 * macs + _bias(op, out)
    if isinstance(op, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        macs = math.prod(op.kernel_size) * (cin // op.groups) * out
        return 2 * macs + _bias(op, out)
    if isinstance(op, keras.layers.Dense):
        return 2 * cin * out + _bias(op, out)
    if isinstance(op, keras.layers.BatchNormalization | keras.layers.Normalization):
        return 2 * out
    if isinstance(op, keras.layers.LayerNormalization):
        return 5 * out
    if isinstance(op, _POOLS):
        return math.prod(op.pool_size) * out
    if isinstance(op, _GLOBAL_POOLS):
        return _count(input_shapes[0])
    if isinstance(op, _MERGES) or (
        not isinstance(op, keras.layers.Layer) and len(input_shapes) > 1
    ):
        return (len(input_shapes) - 1) * out
    if isinstance(op, _VIEWS + _FREE) or _is_linear(op):
        return 0
    return out


def _is_linear(op: Any) -> bool:
    activation = getattr(op, "activation", None)
    return isinstance(op, keras.layers.Activation) and activation is keras.activations.linear


def _input_shapes(op: Any) -> list[tuple[int | None, ...]]:
    if isinstance(op, keras.layers.InputLayer):
        return []
    inputs = op.input
    inputs = inputs if isinstance(inputs, list | tuple) else [inputs]
    return [_shape(t) for t in inputs if hasattr(t, "shape")]


def layer_rows(model: keras.Model, dtype_bytes: int = 4, prefix: str = "") -> list[LayerRow]:
    """One row per layer or op of any built Keras model, nested models flattened."""
    rows: list[LayerRow] = []
    ops = model.layers if isinstance(model, keras.Sequential) else model.operations
    for op in ops:
        if isinstance(op, keras.Model):  # flatten nested models into their layers
            rows.extend(layer_rows(op, dtype_bytes, prefix=f"{prefix}{op.name}/"))
            continue
        outputs = op.output if isinstance(op.output, list | tuple) else [op.output]
        shapes = [_shape(t) for t in outputs]
        activations = sum(_count(s) for s in shapes)
        params = op.count_params() if isinstance(op, keras.layers.Layer) and op.weights else 0
        rows.append(
            LayerRow(
                name=prefix + op.name,
                type=type(op).__name__,
                output_shape=shapes[0],
                activations=activations,
                memory_bytes=activations * dtype_bytes,
                params=params,
                flops=sum(layer_flops(op, _input_shapes(op), s) for s in shapes),
                counted=not (isinstance(op, _VIEWS) or _is_linear(op)),
            )
        )
    return rows


def inspect_architecture(
    name: str,
    image_size: int | None = None,
    include_top: bool = False,
    dtype_bytes: int = 4,
    pooling: str | None = "avg",
) -> ArchitectureReport:
    """Build ``name`` with random weights and tabulate it layer by layer.

    Args:
        name: A registered backbone name (any case).
        image_size: Square input size; the backbone's ``default_size`` when None.
        include_top: Keep the 1000-class ImageNet classifier (VGG16's lecture table has it).
        dtype_bytes: Bytes per value: 4 for float32, 2 for (mixed) bfloat16/float16.
        pooling: Pooling after the features when ``include_top`` is False.
    """
    spec = get_backbone(name)
    size = spec.default_size if image_size is None else image_size
    model = spec.build(size, None, include_top=include_top, pooling=pooling)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    report = ArchitectureReport(
        name=spec.name,
        image_size=size,
        include_top=include_top,
        dtype_bytes=dtype_bytes,
        rows=layer_rows(model, dtype_bytes),
        trainable_params=int(trainable),
    )
    if spec.name == "VGG16" and size == 224:
        report.notes.append(
            "The CS231n slide says 'TOTAL memory: 24M * 4 bytes ~ 93MB / image', but its own "
            "per-layer lines add up to about 15.2M values (61 MB), the total computed here."
        )
    return report


def human_count(value: float) -> str:
    """1234 → '1.23K', 3211264 → '3.21M' (decimal units, like the lecture's 3.2M)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def human_bytes(value: float) -> str:
    """Decimal bytes: 60950432 → '61 MB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def format_architecture(report: ArchitectureReport, batch_size: int = 32) -> str:
    """An aligned text table like the lecture's, with totals and training-memory lines."""
    header = ("layer", "type", "output", "activations", "memory", "params", "FLOPs")
    lines = [
        (
            r.name,
            r.type,
            "[" + "x".join("?" if d is None else str(d) for d in r.output_shape) + "]",
            human_count(r.activations) + ("" if r.counted else " (view)"),
            human_bytes(r.memory_bytes) if r.counted else "-",
            human_count(r.params),
            human_count(r.flops),
        )
        for r in report.rows
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        left = [row[i].ljust(widths[i]) for i in range(3)]
        right = [row[i].rjust(widths[i]) for i in range(3, len(row))]
        return "  ".join(left + right).rstrip()

    memory = report.training_memory(batch_size)
    out = [
        f"{report.name} at {report.image_size}x{report.image_size}"
        f" ({'with' if report.include_top else 'without'} top, {report.dtype_bytes} bytes/value)",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(line) for line in lines),
        "",
        f"TOTAL activations: {human_count(report.total_activations)} values x "
        f"{report.dtype_bytes} bytes = {human_bytes(report.total_memory_bytes)} / image "
        "(forward only; ~x2 for backward)",
        f"TOTAL params: {human_count(report.total_params)} ({report.total_params:,d}; "
        f"{human_bytes(report.total_params * report.dtype_bytes)}), "
        f"trainable {human_count(report.trainable_params)}",
        f"TOTAL FLOPs: {human_count(report.total_flops)} / image (2 per multiply-add)",
        f"Training memory, batch {batch_size}: activations "
        f"{human_bytes(memory['activations_bytes'])} (forward kept for backward) + params "
        f"{human_bytes(memory['params_bytes'])} + gradients "
        f"{human_bytes(memory['gradients_bytes'])} + optimizer "
        f"{human_bytes(memory['optimizer_bytes'])} (2 slots) = "
        f"{human_bytes(memory['total_bytes'])}",
    ]
    out.extend(f"Note: {note}" for note in report.notes)
    return "\n".join(out)
