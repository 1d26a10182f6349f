"""Launch: a search (or the sanity gate first) on a dataset, as a detached CLI job.

The form is the CLI's ``SearchConfig`` (``app.launch``): what it shows is what the job runs, an
invalid field disables Launch and says which, and a submission starts one job however often it
is clicked. Its values stay for the session (every page) and the last launched ones are the next
session's defaults.
"""

from __future__ import annotations

import secrets

import streamlit as st

from app import estimate, launch, weights
from app.common import dataset_picker, finding_title, show_findings, store
from app.dataset_audit import audit_report, modified
from training import jobs
from training.babysit.advice import field_name
from training.babysit.findings import format_value
from training.errors import BabysitterError, ConfigError
from training.model.backbones import BackboneSpec, get_backbone, list_backbones
from training.store import Run, RunStore
from tuner.config import SearchConfig
from tuner.overrides import parse_overrides
from tuner.space import HYPERPARAMETERS, default_space

WEIGHT_CHOICES = {
    "imagenet": "ImageNet (pretrained)",
    "none": "None (random initial weights)",
    "file": "A weights file",
}
KEEP = {"persist_state": "session"}  # the value stays when the user visits another page


@st.cache_data(show_spinner=False)
def backbone_table() -> list[dict]:
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
    return estimate.count_images(folder)


@st.cache_data(ttl=10, show_spinner=False)
def current_load() -> estimate.Load:
    """The machine's other work now (a 0.25 s sample: kept 10 s, not paid on every rerun)."""
    return estimate.machine_load()


@st.cache_data(ttl=15, show_spinner=False)
def measured(home: str, names: tuple[str, ...], image_size: int | None) -> tuple:
    """Per-backbone rates, start-up and head-trial seconds from this store (see app.estimate)."""
    s = RunStore(home)
    rates = {name: estimate.rates_for(s, name, image_size) for name in names}
    return rates, estimate.startup_seconds(s), estimate.trial_epoch_seconds(s)


def seed_form(s: RunStore, why_not_imagenet: bool) -> None:
    """First visit of the session: the last launched settings, else the CLI's defaults (random
    weights when ImageNet's cannot be had)."""
    last = launch.load_last(s.home)
    values = {**launch.defaults(), **last}
    if "weights" not in last and why_not_imagenet:
        values["weights"] = "none"
    if values["weights"] not in WEIGHT_CHOICES:
        values["weights_file"], values["weights"] = values["weights"], "file"
    values["image_size"] = values["image_size"] or launch.defaults()["image_size"]
    if data := values.pop("data", None):
        values["dataset"] = data  # the dataset picker's shared choice
    for key, value in values.items():
        st.session_state.setdefault(key, value)


def renew_token() -> None:
    st.session_state["launch_token"] = secrets.token_hex(8)


def submit(s: RunStore, args: list[str], once: bool = True) -> jobs.Job | None:
    """Start ``args`` once per form: a second click, or a rerun, finds the first job. With
    ``once=False`` (the gate) the same command may start again after its job ended."""
    key = launch.submission_key(args, st.session_state["launch_token"])
    launched = st.session_state.setdefault("launched", {})
    if key in launched:
        earlier = launched[key]
        if once or earlier is None or jobs.get_job(s, earlier).status == "running":
            return None
    launched[key] = None  # before starting: a click arriving meanwhile sees it taken
    try:
        job = jobs.start_job(s, args)
    except BabysitterError as error:
        del launched[key]
        st.error(str(error))
        return None
    launched[key] = job.id
    st.session_state["job_id"] = st.session_state["follow_job"] = job.id
    return job


def started(args: list[str]) -> int | None:
    key = launch.submission_key(args, st.session_state["launch_token"])
    return st.session_state.get("launched", {}).get(key)


def weights_choice(
    s: RunStore, why_not: str | None, specs: list[BackboneSpec], image_size: int
) -> str | None:
    """The ``--weights`` value the form gives, or None while it names no file the job could
    load into each of ``specs`` at ``image_size`` (checked here, not 24 s into the job)."""
    choice = st.session_state["weights"]
    if choice == "imagenet" and why_not:
        st.warning(f"{why_not} Choose **None** or **A weights file** under Weights.")
    if choice == "none" and why_not:
        st.info(
            f"Weights: **None**, random initial weights. {why_not} To start pretrained, "
            "choose **A weights file** under Weights.",
            icon=":material/info:",
        )
    if choice != "file":
        return choice
    upload = st.file_uploader(
        "Upload a weights file (.h5 or .weights.h5)", type=["h5"], key="weights_upload"
    )
    if upload is not None and st.session_state.get("weights_uploaded") != upload.file_id:
        try:
            saved = weights.save_upload(s.home, upload.name, upload.getvalue())
        except BabysitterError as error:
            st.error(str(error))
        else:
            st.session_state["weights_file"] = str(saved)
            st.session_state["weights_uploaded"] = upload.file_id
    path = st.text_input(
        "Weights file",
        key="weights_file",
        placeholder="an uploaded file, or a .h5 file under the data folders",
        **KEEP,
    )
    found, why = weights.weights_file(path, s.home)
    if found is None:
        st.warning(why)
        return None
    with st.spinner("Checking the weights file (a backbone new at this size is built once)…"):
        problem, note = weights.file_problem(found, specs, image_size, s.cache_dir())
    if problem:
        st.error(problem, icon=":material/block:")
        return None
    if note:
        st.caption(note)
    return str(found)


def latest_check(s: RunStore, config: SearchConfig) -> Run | None:
    """The newest gate run of exactly what the form would check now: the same data, first
    backbone and input settings (a gate of another size or weights says nothing about these)."""
    wanted = launch.gate_key(config)
    for run in s.list_runs(kind="check"):
        if launch.gate_key(run.config) == wanted:
            return run
    return None


def gate_warnings(s: RunStore, run: Run) -> None:
    """A gate that passed with warnings lists them, one line each, with a link to its run."""
    warned = [f for f in s.findings(run.id) if f.get("status") == "warn"]
    for f in warned:
        st.markdown(
            f"- :orange[:material/warning:] **{finding_title(f)}** — measured "
            f"{format_value(f.get('measured'))} (expected {format_value(f.get('expected'))})"
        )
    if st.button(f"Open run {run.id} in Monitor", key=f"gate-open-{run.id}"):
        st.session_state["run_id"] = run.id
        st.session_state["follow"] = "Run"
        st.session_state.pop("follow_job", None)
        st.switch_page("views/monitor.py")


def gate_section(s: RunStore, config: SearchConfig) -> bool:
    """The sanity gate's verdict for these settings; False while Launch must wait for the user
    to confirm past failed checks."""
    job_id = st.session_state.get("check_job")
    job = next((j for j in jobs.list_jobs(s) if j.id == job_id), None)
    if job is not None and job.status == "running":
        st.info(f"The sanity gate is running (job {job.id})…", icon=":material/fact_check:")
        follow_check(job.id)
        return True
    run = latest_check(s, config)
    if run is None:
        if job is not None and job.status == "failed":
            lines = jobs.log_tail(job).splitlines()
            why = next((x for x in reversed(lines) if x.startswith("error:")), "see its log")
            st.error(f"The sanity gate (job {job.id}) failed before checking: {why}")
        return True
    gate = (run.summary or {}).get("gate")
    if run.status == "completed" and gate in ("ok", "warn"):
        words = "passed" if gate == "ok" else "passed with warnings"
        st.success(f"The sanity gate {words} (run {run.id}).", icon=":material/fact_check:")
        if gate == "warn":
            gate_warnings(s, run)
        return True
    if run.status == "running":
        return True
    failed = [f for f in s.findings(run.id) if f.get("status") == "fail"]
    reason = f"{len(failed)} failed check(s)" if failed else run.error or "it did not finish"
    st.error(
        f"The sanity gate failed on this dataset with {config.backbones[0]} (run {run.id}): "
        f"{reason}.",
        icon=":material/report:",
    )
    show_findings(failed)
    return st.checkbox("Launch anyway, despite the failed checks", key=f"confirm-{run.id}")


def launch_button(where, disabled: bool) -> bool:
    return where.button(
        "Launch", key="launch", type="primary", icon=":material/rocket_launch:", disabled=disabled
    )


def untrainable(s: RunStore, data: str) -> str | None:
    """Why the audit says this data cannot train (Launch and Check are then disabled), or None."""
    try:
        report = audit_report(data, str(s.home), modified(data))
    except BabysitterError as error:
        reason = str(error)
    else:
        if report.verdict.trainable:
            return None
        reason = "; ".join(report.verdict.reasons)
    st.error(f"This dataset cannot be trained: {reason}", icon=":material/block:")
    st.page_link(
        "views/datasets.py", label="See its audit on Datasets", icon=":material/photo_library:"
    )
    return reason


def search_ranges(backbones: list[str]) -> tuple[list[str], list[str]]:
    """The "Advanced: search ranges" fields: every knob the search samples (and the advice
    names, by the same labels), prefilled with its default range. Returns the ``--space``
    items that differ from the defaults, and a message per field that does not parse."""
    base = default_space(backbones or ["MobileNetV2"])
    items, problems = [], []
    with st.expander("Advanced: search ranges"):
        st.caption(
            "What each head trial samples: LOW:HIGH (rates and L2 on a log scale) or A,B,C. "
            "The learning rate's range is replaced by the window the sanity gate measured "
            "unless you change it here."
        )
        columns = st.columns(3)
        for i, name in enumerate(launch.RANGE_KNOBS):
            default = launch.range_text(base[name])
            key = f"space_{name}"
            st.session_state.setdefault(key, default)
            text = (
                columns[i % 3]
                .text_input(field_name(name), key=key, help=HYPERPARAMETERS[name], **KEEP)
                .strip()
            )
            if not text or text == default:
                continue
            try:
                parse_overrides([f"{name}={text}"])
            except ConfigError as error:
                problems.append(f"{field_name(name)}: {launch.without_flag(str(error))}")
            else:
                items.append(f"{name}={text}")
    return items, problems


@st.fragment(run_every=2)
def follow_check(job_id: int) -> None:
    """Reruns the page once the gate's job ends, so its verdict shows without a click."""
    if jobs.get_job(store(), job_id).status != "running":
        st.rerun()


st.title("Launch a search")
s = store()
table = backbone_table()
by_name = {row["name"]: row for row in table}
st.session_state.setdefault("launch_token", secrets.token_hex(8))
if "trials" not in st.session_state:  # a new session: nothing typed yet
    first = [get_backbone(n) for n in launch.defaults()["backbones"]]
    seed_form(s, weights.imagenet_problem(first, 224, {}) is not None)
data = dataset_picker(s, "launch_dataset", "No datasets yet: add one on the Datasets page.")

with st.expander("Backbones in the registry"):
    st.dataframe(table, hide_index=True)
names = st.multiselect("Backbones", list(by_name), key="backbones", **KEEP)
c1, c2, c3 = st.columns(3)
image_size = c1.number_input("Image size", step=8, key="image_size", **KEEP)
c2.selectbox(
    "Weights",
    list(WEIGHT_CHOICES),
    format_func=WEIGHT_CHOICES.get,
    key="weights",
    **KEEP,
)
batch_size = c3.number_input("Batch size", step=1, key="batch_size", **KEEP)
reachable = st.session_state.setdefault("weights_reachable", {})
specs = [get_backbone(n) for n in names]
why_not = weights.imagenet_problem(specs, int(image_size or 0), reachable) if specs else None
weights_value = weights_choice(s, why_not, specs, int(image_size or 0))
c1, c2, c3, c4, c5 = st.columns(5)
trials = c1.number_input("Trials", step=1, key="trials", **KEEP)
stages = c2.number_input("Stages", step=1, key="stages", **KEEP)
epochs_head = c3.number_input("Head epochs", step=1, key="epochs_head", **KEEP)
epochs_finetune = c4.number_input("Fine-tune epochs", step=1, key="epochs_finetune", **KEEP)
top_k = c5.number_input(
    "Top K fine-tuned",
    step=1,
    key="top_k",
    help="0: search heads only and train no model (the result is the best configuration)",
    **KEEP,
)

space, space_problems = search_ranges(names)
for text in space_problems:
    st.error(text, icon=":material/block:")

try:
    config = SearchConfig(
        data=data,
        space=space,
        backbones=names,
        weights=weights_value or "none",
        image_size=image_size,
        batch_size=batch_size,
        trials=trials,
        stages=stages,
        epochs_head=epochs_head,
        epochs_finetune=epochs_finetune,
        top_k=top_k,
    )
except ConfigError as error:
    st.error(launch.problem(error), icon=":material/block:")
    launch_button(st, disabled=True)
    st.stop()
if weights_value is None or space_problems:  # a weights file or a range not usable yet
    launch_button(st, disabled=True)
    st.stop()

search, check = launch.search_args(config), launch.check_args(config)
images = count_images(data)
rates, startup, trial_epoch = measured(str(s.home), tuple(config.backbones), config.image_size)
guess = estimate.estimate(config, images, rates, startup, trial_epoch, load=current_load())
st.metric(
    "Estimated time" if guess.measured else "Estimated time (a first guess)",
    estimate.human_range(guess.low, guess.high),
    help=guess.basis,
)
st.markdown("**Search command**")
st.code(launch.command_line(search), language="bash", wrap_lines=True)
st.markdown("**Sanity gate command**")
st.code(launch.command_line(check), language="bash", wrap_lines=True)

refused = untrainable(s, data)
confirmed = refused is None and gate_section(s, config)
left, right = st.columns(2)
checking = left.button(
    "Check first", key="check", icon=":material/fact_check:", disabled=refused is not None
)
if checking and (job := submit(s, check, once=False)) is not None:
    st.session_state["check_job"] = job.id
    st.rerun()
done = started(search)
clicked = launch_button(right, disabled=done is not None or not confirmed)
if clicked and done is None and confirmed and submit(s, search) is not None:
    launch.save_last(s.home, config)
    st.rerun()  # drawn again with Launch disabled: these settings are started
if done is not None:
    job = jobs.get_job(s, done)
    st.success(f"Started job {job.id} ({job.kind}), process {job.pid}.")
    st.page_link(
        "views/monitor.py", label="Follow it on the Monitor page", icon=":material/monitoring:"
    )
    st.button(
        "Launch again",
        key="relaunch",
        on_click=renew_token,
        help="These settings were launched: start another job with them",
    )
