"""Architecture: the lecture's per-layer table for any backbone (memory early, params late)."""

from __future__ import annotations

import streamlit as st

from app.charts import layers_chart


@st.cache_resource(show_spinner="Reading the backbone registry…")
def backbone_sizes() -> dict[str, tuple[int, int]]:
    from training.model.backbones import list_backbones

    return {spec.name: (spec.default_size, spec.min_size) for spec in list_backbones()}


@st.cache_data(show_spinner="Building the model to measure it…", max_entries=8)
def inspect(name: str, image_size: int, include_top: bool) -> dict:
    from training.model.architecture import inspect_architecture

    return inspect_architecture(name, image_size, include_top=include_top).to_dict()


def human(value: float, unit: str = "") -> str:
    """In ``inspect``'s units; imported on use, as ``inspect`` above has loaded Keras by then."""
    from training.model.architecture import human_bytes, human_count

    return human_bytes(value) if unit == "B" else human_count(value)


st.title("Architecture")
sizes = backbone_sizes()
names = list(sizes)
name = st.selectbox(
    "Backbone", names, index=names.index("VGG16") if "VGG16" in names else 0, key="arch_backbone"
)
default, minimum = sizes[name]
include_top = st.checkbox("Include the ImageNet classifier (fixes the size)", key="include_top")
image_size = st.number_input(
    "Image size",
    min_value=minimum,
    max_value=1024,
    value=default,
    step=8,
    key="arch_size",
    disabled=include_top,
)
report = inspect(name, default if include_top else int(image_size), include_top)
totals = report["totals"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parameters", human(totals["params"]))
c2.metric("Activations / image", human(totals["activations"]))
c3.metric("Memory / image (forward)", human(totals["memory_bytes"], "B"))
c4.metric("FLOPs / image", human(totals["flops"]))
for note in report["notes"]:
    st.caption(note)
rows = report["rows"]
a, b = st.columns(2)
a.markdown("**Activation memory per layer**")
a.altair_chart(layers_chart(rows, "memory_bytes", "bytes per image"), width="stretch")
b.markdown("**Parameters per layer**")
b.altair_chart(layers_chart(rows, "params", "parameters"), width="stretch")
st.dataframe(
    [
        {
            "layer": r["name"],
            "type": r["type"],
            "output": "×".join("?" if d is None else str(d) for d in r["output_shape"]),
            "activations": r["activations"],
            "memory (bytes)": r["memory_bytes"],
            "params": r["params"],
            "FLOPs": r["flops"],
        }
        for r in rows
    ],
    hide_index=True,
)
