"""Launch: a search (or the sanity gate first) on a dataset, as a detached CLI job."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.common import dataset_picker, store
from app.launch import (
    SearchForm,
    check_args,
    command_line,
    estimate_seconds,
    human_seconds,
    search_args,
)
from training import jobs
from training.errors import BabysitterError


@st.cache_resource(show_spinner="Reading the backbone registry…")
def backbone_table() -> list[dict]:
    """The registry as plain rows (imports Keras once, lazily, on this page only)."""
    from training.backbones import list_backbones

    return [
        {
            "name": spec.name,
            "family": spec.family,
            "params": spec.params_backbone,
            "default size": spec.default_size,
            "min size": spec.min_size,
        }
        for spec in list_backbones()
    ]


@st.cache_data(ttl=60, show_spinner=False)
def count_images(folder: str) -> int:
    suffixes = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
    return sum(1 for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes)


st.title("Launch a search")
s = store()
data = dataset_picker(s, "launch_dataset", "No datasets yet: add one on the Datasets page.")

table = backbone_table()
by_name = {row["name"]: row for row in table}
with st.expander("Backbones in the registry"):
    st.dataframe(table, hide_index=True)
names = st.multiselect(
    "Backbones",
    list(by_name),
    default=["MobileNetV2"] if "MobileNetV2" in by_name else [],
    key="backbones",
)
smallest = max((by_name[n]["min size"] for n in names), default=32)
default = min((by_name[n]["default size"] for n in names), default=224)

c1, c2, c3 = st.columns(3)
image_size = c1.number_input(
    "Image size",
    min_value=smallest,
    max_value=1024,
    value=max(default, smallest),
    step=8,
    key="image_size",
)
weights = c2.selectbox("Weights", ["imagenet", "none"], key="weights")
batch_size = c3.number_input("Batch size", 1, 1024, 32, key="batch_size")
c1, c2, c3, c4, c5 = st.columns(5)
trials = c1.number_input("Trials", 1, 1000, 20, key="trials")
stages = c2.number_input("Stages", 1, 10, 2, key="stages")
epochs_head = c3.number_input("Head epochs", 0, 500, 10, key="epochs_head")
epochs_finetune = c4.number_input("Fine-tune epochs", 0, 500, 3, key="epochs_finetune")
top_k = c5.number_input(
    "Top K fine-tuned",
    0,
    20,
    2,
    key="top_k",
    help="0: search heads only and train no model (the result is the best configuration)",
)

form = SearchForm(
    data=data,
    backbones=names,
    image_size=int(image_size),
    weights=weights,
    trials=int(trials),
    stages=int(stages),
    epochs_head=int(epochs_head),
    epochs_finetune=int(epochs_finetune),
    top_k=int(top_k),
    batch_size=int(batch_size),
)
try:
    search, check = search_args(form), check_args(form)
except ValueError as error:
    st.warning(str(error))
    st.stop()

images = count_images(data)
estimate = estimate_seconds(
    images,
    [by_name[n]["params"] for n in names],
    int(image_size),
    int(trials),
    int(epochs_head),
    int(epochs_finetune),
    int(top_k),
)
st.metric(
    "Rough time on a CPU", human_seconds(estimate), help=f"{images} images; a GPU is much faster."
)
st.markdown("**Search command**")
st.code(command_line(search), language="bash")
st.markdown("**Sanity gate command**")
st.code(command_line(check), language="bash")

left, right = st.columns(2)
started = None
try:
    if left.button("Check first", key="check", icon=":material/fact_check:"):
        started = jobs.start_job(s, check)
    if right.button("Launch", key="launch", type="primary", icon=":material/rocket_launch:"):
        started = jobs.start_job(s, search)
except BabysitterError as error:
    st.error(str(error))
if started is not None:
    st.session_state["job_id"] = st.session_state["follow_job"] = started.id
    st.success(f"Started job {started.id} ({started.kind}), process {started.pid}.")
    st.page_link(
        "views/monitor.py", label="Follow it on the Monitor page", icon=":material/monitoring:"
    )
