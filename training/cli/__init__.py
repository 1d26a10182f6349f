"""``python -m training``: the parser (``parser``), one function per command (``commands``), the
demo (``demo``), and the console helpers both CLIs share (``console``: JSON output, result
printing, the error wrapper that turns our errors into one line and an exit code).
"""

from training.cli.parser import main

__all__ = ["main"]
