"""Why readings were refused, in the log: a rate-limited sample per reason.

The counters (``anomae_events_invalid_total``, ``anomae_events_dropped_total``) say how many
readings were refused; the log says why, with the offending field of the latest one. A
flood of bad readings must not flood the log too, so :class:`RefusalLog` writes at most one
line per reason per ``period`` seconds, carrying how many readings of that reason it stands
for (``refused``) and how many of them got no line of their own (``suppressed``). It reads
the owners' counters and samples when asked (the daemon asks once a second and at stop):
nothing is done per reading but the owner's ``samples[reason] = ...``.

    >>> import io
    >>> from anomae.monitor.logs import LogfmtFormatter
    >>> out, logger = io.StringIO(), logging.getLogger("anomae.doctest.refusals")
    >>> handler = logging.StreamHandler(out)
    >>> handler.setFormatter(LogfmtFormatter())
    >>> logger.addHandler(handler)
    >>> logger.propagate = False
    >>> rl = RefusalLog(period=10.0, logger=logger)
    >>> counts = {"bad_seq": 1}
    >>> rl.report("invalid", counts, {"bad_seq": "seq=-1"}, now=0.0)
    >>> counts["bad_seq"] = 50
    >>> rl.report("invalid", counts, {"bad_seq": "seq=-2"}, now=5.0)  # too soon: nothing
    >>> rl.report("invalid", counts, {"bad_seq": "seq=-3"}, now=10.0)
    >>> for line in out.getvalue().splitlines():
    ...     print(line.split(" msg=")[1])
    "readings refused" kind=invalid reason=bad_seq refused=1 suppressed=0 sample="seq=-1"
    "readings refused" kind=invalid reason=bad_seq refused=49 suppressed=48 sample="seq=-3"
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from anomae.monitor.logs import log

LOG = logging.getLogger("anomae.monitor")
PERIOD_S = 10.0


class RefusalLog:
    """At most one warning per (kind, reason) per ``period`` seconds; see the module doc."""

    def __init__(self, period: float = PERIOD_S, logger: logging.Logger = LOG) -> None:
        self.period, self.logger = period, logger
        self._logged: dict[tuple[str, str], int] = {}  # count at the last line
        self._when: dict[tuple[str, str], float] = {}  # time of the last line

    def report(
        self,
        kind: str,
        counts: Mapping[str, int],
        samples: Mapping[str, str],
        now: float,
        final: bool = False,
    ) -> None:
        """Log the reasons of ``counts`` that grew since their last line, if that line is
        ``period`` seconds old (``final``: whatever grew, at stop)."""
        for reason, n in list(counts.items()):
            key = (kind, reason)
            new = n - self._logged.get(key, 0)
            if new <= 0:
                continue
            if not final and now - self._when.get(key, -math.inf) < self.period:
                continue
            self._logged[key], self._when[key] = n, now
            log(
                self.logger,
                logging.WARNING,
                "readings refused",
                kind=kind,
                reason=reason,
                refused=new,
                suppressed=new - 1,
                sample=samples.get(reason, ""),
            )
