"""``python -m training learning-curve DATA --backbone B``: the report, or ``--json``."""

from __future__ import annotations

from training.babysit.learning_curve import format_curve
from training.cli.console import emit_json, to_stderr
from training.config import TrainConfig


def report_curve(config: TrainConfig, as_json: bool) -> int:
    """Compute the curve and print it; 0 whatever the verdict (a curve that cannot be read is
    an answer, said with its reason, not a failure)."""
    from training.more_data import curve_for_config

    result = curve_for_config(
        config, verbose=0 if as_json else 1, echo=to_stderr if as_json else print
    )
    if as_json:
        emit_json(result)
    else:
        print()
        print(format_curve(result["learning_curve"], config.to_dict()))
    return 0
