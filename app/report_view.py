"""The model card on Results: the same Markdown ``python -m training runs report RUN`` writes,
offered as a download beside the model's."""

from __future__ import annotations

import streamlit as st

from training.errors import BabysitterError
from training.model_card import model_card
from training.store import Run, RunStore


def offer_model_card(store: RunStore, run: Run) -> None:
    """A download button for ``run``'s model card, or a caption saying why there is none (a
    search that trained no model, a card the store cannot give)."""
    try:
        card = model_card(store, run.id)
    except BabysitterError as error:
        st.caption(f"No model card: {error}")
        return
    st.download_button(
        "Download model card (.md)",
        data=card.encode("utf-8"),
        file_name=f"{run.id}-model-card.md",
        mime="text/markdown",
        icon=":material/description:",
        key=f"download_card_{run.id}",
        help=f"What the run trained on, how it scored, what it found and its limits "
        f"(the same as `python -m training runs report {run.id}`).",
    )
