"""The one error type of the offline module: bad input, reported as a single line naming the problem.

Examples
--------
>>> str(OfflineError("target column 'y' is not in data.csv"))
"target column 'y' is not in data.csv"
"""

from __future__ import annotations


class OfflineError(ValueError):
    """Bad data, a bad framing card or a bad output directory; the message is one line for the user."""
