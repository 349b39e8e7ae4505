"""Post-rules: normalised scores of one series → events, the same in batch and in a stream.

A *hold* level ``off`` ≤ 1 gives hysteresis: an event **opens** when ``min_windows``
consecutive windows score above 1 (it starts at the first of them), **stays open** while
the score stays above ``off``, and closes at the first window that does not (NaN, an
unscorable window, closes it too). Events less than ``max_gap`` + 1 windows apart are
**merged**. After an event, a new one that starts within ``cooldown`` windows of its end is
**suppressed** (dropped). :func:`event_bounds` does this for a whole series at once;
:class:`EventTracker` does it one window at a time for the streaming monitor, and a test
proves both give the same events.

The model card carries the alarm policy the model was calibrated for (``card.alarm``);
:func:`resolve_post_rule` and :func:`resolve_likelihood` apply it, with options the user
gave explicitly taking precedence, and say where each setting came from.

    >>> import numpy as np
    >>> norm = np.array([0.5, 1.2, 1.5, 0.9, 2.0, 0.1, 1.1, 1.3, 1.4])
    >>> [(e.first, e.last) for e in find_events(norm, PostRule(min_windows=2))]
    [(1, 2), (6, 8)]
    >>> [(e.first, e.last) for e in find_events(norm, PostRule(min_windows=2, off=0.8))]
    [(1, 4), (6, 8)]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomae.verdict import ANOMALOUS_ABOVE, is_anomalous


@dataclass(frozen=True)
class PostRule:
    """``min_windows`` to open, ``off`` to hold (hysteresis), ``max_gap`` to merge,
    ``cooldown`` windows of suppression after an event."""

    min_windows: int = 1
    max_gap: int = 0
    off: float = 1.0
    cooldown: int = 0

    def __post_init__(self) -> None:
        if self.min_windows < 1:
            raise ValueError(f"min_windows must be >= 1, got {self.min_windows}")
        if self.max_gap < 0 or self.cooldown < 0:
            raise ValueError("max_gap and cooldown must be >= 0")
        if not 0.0 <= self.off <= 1.0:
            raise ValueError(f"off (hold level, normalised) must be in [0, 1], got {self.off}")


RULE_KEYS = ("min_windows", "max_gap", "off", "cooldown")
DEFAULT_RULE = PostRule(min_windows=3)  # scoring's rule where neither card nor option says


def alarm_policy(rule: PostRule, likelihood: Any = None) -> dict[str, Any]:
    """The ``ModelCard.alarm`` dict for ``rule`` and an optional
    :class:`~anomae.likelihood.Likelihood` (absent: alarms come from the fixed threshold)."""
    policy: dict[str, Any] = {"post_rule": dataclasses.asdict(rule)}
    if likelihood is not None:
        policy["likelihood"] = dataclasses.asdict(likelihood)
    return policy


def resolve_post_rule(
    card_alarm: dict[str, Any], overrides: dict[str, Any], default: PostRule | None = None
) -> tuple[PostRule, dict[str, str]]:
    """The post-rule to apply: each of ``min_windows``, ``max_gap``, ``off``, ``cooldown``
    from ``overrides`` when given (not None), else from the model card's alarm policy, else
    from ``default`` (:data:`DEFAULT_RULE`, what scoring always applied). Returns the rule
    and, per key, ``"option"``, ``"card"`` or ``"default"``.

        >>> card = {"post_rule": {"min_windows": 2, "max_gap": 16, "off": 1.0, "cooldown": 0}}
        >>> rule, src = resolve_post_rule(card, {"min_windows": None, "cooldown": 5})
        >>> rule
        PostRule(min_windows=2, max_gap=16, off=1.0, cooldown=5)
        >>> src["min_windows"], src["cooldown"]
        ('card', 'option')
    """
    unknown = sorted(set(overrides) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"unknown post-rule setting(s) {unknown}; known: {list(RULE_KEYS)}")
    stored = card_alarm.get("post_rule") or {}
    if not isinstance(stored, dict):
        raise ValueError(f"the model card's alarm.post_rule is not an object: {stored!r}")
    values: dict[str, Any] = dataclasses.asdict(default or DEFAULT_RULE)
    source: dict[str, str] = {}
    for key in RULE_KEYS:
        if overrides.get(key) is not None:
            values[key], source[key] = overrides[key], "option"
        elif stored.get(key) is not None:
            values[key], source[key] = stored[key], "card"
        else:
            source[key] = "default"
    try:
        kw: dict[str, Any] = {k: (float(v) if k == "off" else int(v)) for k, v in values.items()}
        rule = PostRule(**kw)
    except (TypeError, ValueError) as exc:
        where = ", ".join(f"{k} from the {source[k]}" for k in values if source[k] != "default")
        raise ValueError(f"invalid post-rule ({where}): {exc}") from exc
    return rule, source


def resolve_likelihood(
    card_alarm: dict[str, Any], enabled: bool | None, overrides: dict[str, Any]
) -> tuple[Any, str]:
    """The :class:`~anomae.likelihood.Likelihood` alarm policy to apply, or None for the
    fixed threshold, and where it came from (``"option"``, ``"card"`` or ``"default"``).

    ``enabled`` None follows the card (a likelihood policy stored there is used); True or
    False is the user's explicit choice. Settings in ``overrides`` that are not None replace
    the card's (or the defaults)."""
    from anomae.likelihood import Likelihood

    stored = card_alarm.get("likelihood")
    if stored is not None and not isinstance(stored, dict):
        raise ValueError(f"the model card's alarm.likelihood is not an object: {stored!r}")
    use = stored is not None if enabled is None else enabled
    given = {k: v for k, v in overrides.items() if v is not None}
    if not use:
        return None, "option" if enabled is not None else "card" if stored else "default"
    source = "option" if enabled or given else "card"
    try:
        return Likelihood(**{**(stored or {}), **given}), source
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid likelihood policy: {exc}") from exc


def rule_text(rule: PostRule, source: dict[str, str]) -> str:
    """One line saying each post-rule setting and where it came from."""
    return "post-rule " + ", ".join(
        f"{k}={getattr(rule, k)} ({source.get(k, 'default')})" for k in RULE_KEYS
    )



@dataclass(frozen=True)
class Span:
    """Windows ``first..last`` (inclusive indices) form one event."""

    first: int
    last: int


def _above(x: np.ndarray, level: float) -> np.ndarray:
    return np.greater(x, level, where=~np.isnan(x), out=np.zeros(x.shape, bool))


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and inclusive ends of the runs of True in ``mask``."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def event_bounds(
    normalised: np.ndarray, rule: PostRule = PostRule()
) -> tuple[np.ndarray, np.ndarray]:
    """First and last window index (inclusive) of each event, as two int arrays."""
    above_s, above_e = runs(is_anomalous(normalised))
    on_s = above_s[(above_e - above_s + 1) >= rule.min_windows]
    if on_s.size == 0:
        return on_s, on_s.copy()
    hold_s, hold_e = runs(_above(normalised, rule.off)) if rule.off < 1.0 else (above_s, above_e)
    # each qualifying run above 1 lies inside one run above `off`; the first one opens it
    run = np.searchsorted(hold_s, on_s, side="right") - 1
    held, first = np.unique(run, return_index=True)
    starts, ends = on_s[first], hold_e[held]
    opens = np.concatenate([[True], starts[1:] - ends[:-1] - 1 > rule.max_gap])
    closes = np.concatenate([opens[1:], [True]])
    starts, ends = starts[opens], ends[closes]
    if rule.cooldown and starts.size > 1:
        kept = np.zeros(starts.size, bool)
        last_end = -(10**18)
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            if a > last_end + rule.cooldown:
                kept[i], last_end = True, b
        starts, ends = starts[kept], ends[kept]
    return starts, ends


def find_events(normalised: np.ndarray, rule: PostRule = PostRule()) -> list[Span]:
    first, last = event_bounds(normalised, rule)
    return [Span(a, b) for a, b in zip(first.tolist(), last.tolist(), strict=True)]


def event_mask(n: int, spans: list[Span] | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Boolean ``[n]``: windows inside an event."""
    if isinstance(spans, tuple):
        first, last = spans
    else:
        first = np.array([sp.first for sp in spans], dtype=np.int64)
        last = np.array([sp.last for sp in spans], dtype=np.int64)
    d = np.zeros(n + 1, dtype=np.int32)
    np.add.at(d, first, 1)
    np.add.at(d, last + 1, -1)
    return np.cumsum(d[:n]) > 0


class EventTracker:
    """:func:`event_bounds` one window at a time, for streams (one tracker per series).

    ``step(v)`` takes the next normalised score and returns the events that became final
    (a merge can no longer extend them); ``active`` says whether an unsuppressed event is
    open now (the monitor's 0/1 anomaly state); ``flush()`` ends the stream.

        >>> tr = EventTracker(PostRule(min_windows=2))
        >>> [tr.step(v) for v in [0.5, 1.2, 1.5, 0.9, 0.2]], tr.flush()
        ([[], [], [], [], [Span(first=1, last=2)]], [])
    """

    def __init__(self, rule: PostRule = PostRule()) -> None:
        self.rule = rule
        self.t = -1
        self._on_run = 0
        self._open: int | None = None  # start of the open event
        self._open_suppressed = False
        self._pending: tuple[int, int, bool] | None = None  # closed, may still merge
        self._last_kept_end = -(10**18)

    @property
    def active(self) -> bool:
        return self._open is not None and not self._open_suppressed

    @property
    def idle(self) -> bool:
        """No event open or pending and no run above 1 under way: a window scoring <= 1
        would only advance the window count (:meth:`skip` does that for many at once)."""
        return self._open is None and self._pending is None and self._on_run == 0

    def settled(self) -> tuple[int, tuple[int, int] | None]:
        """``(u, span)``: whether windows before ``u`` belong to an event can no longer
        change; besides the spans :meth:`step` returned, ``span`` (first, last) holds those
        of them that the open or pending event keeps for sure (None: none). Batch scoring
        in bounded memory holds back only the windows from ``u`` on."""
        if self._pending is not None:
            a, b, suppressed = self._pending
            return b + 1, None if suppressed else (a, b)
        if self._open is not None:
            return self.t + 1, None if self._open_suppressed else (self._open, self.t)
        return self.t - self._on_run + 1, None

    def skip(self, n: int) -> None:
        """Exactly ``n`` calls of ``step`` with scores <= 1, for an :attr:`idle` tracker."""
        if not self.idle:
            raise ValueError("skip() needs an idle tracker: step() through these windows")
        self.t += n

    def step(self, v: float) -> list[Span]:
        r = self.rule
        self.t += 1
        t = self.t
        done: list[Span] = []
        finite = v == v  # NaN is neither above 1 nor above `off`
        on = finite and v > ANOMALOUS_ABOVE
        held = finite and v > r.off
        if self._open is not None and not held:
            self._pending = (self._open, t - 1, self._open_suppressed)
            self._open = None
        self._on_run = self._on_run + 1 if on else 0
        if self._open is None and self._on_run >= r.min_windows:
            start = t - r.min_windows + 1
            p = self._pending
            if p is not None and start - p[1] - 1 <= r.max_gap:
                self._open, self._open_suppressed = p[0], p[2]  # merge: reopen the last one
            else:
                if p is not None:
                    self._finalise(p, done)
                self._open = start
                self._open_suppressed = start <= self._last_kept_end + r.cooldown
            self._pending = None
        p = self._pending
        # no event detected by now can start within max_gap of the pending one's end
        if p is not None and t >= p[1] + r.max_gap + r.min_windows:
            self._finalise(p, done)
            self._pending = None
        return done

    def _finalise(self, ev: tuple[int, int, bool], done: list[Span]) -> None:
        if not ev[2]:
            done.append(Span(ev[0], ev[1]))
            self._last_kept_end = ev[1]

    def flush(self) -> list[Span]:
        """End of stream: close and report whatever is still open or pending."""
        done: list[Span] = []
        if self._open is not None:
            if self._pending is not None:
                self._finalise(self._pending, done)
            self._pending = (self._open, self.t, self._open_suppressed)
            self._open = None
        if self._pending is not None:
            self._finalise(self._pending, done)
            self._pending = None
        return done
