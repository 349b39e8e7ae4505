"""Human-readable summaries of a pipeline report and of a model card."""

from __future__ import annotations

import statistics
from typing import Any

from anomae.io import ROWS
from anomae.spec import ModelCard


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def params_text(p: dict[str, Any]) -> str:
    """A settings dict as ``{k=v, ...}`` (floats to 4 significant digits)."""
    return (
        "{"
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())
        + "}"
    )


def far_text(far: float | None, ci: Any) -> str:
    """An expected false-alarm rate per window with its 95 % CI."""
    if far is None:
        return "unknown"
    text = f"{far:.3g} per window"
    return text + (f" (95% CI {ci[0]:.3g}-{ci[1]:.3g})" if ci else "")


def false_events_text(th: Any) -> str:
    """The events calibration in words (``th``: a Threshold or its dict), '' for others."""
    get = th.get if isinstance(th, dict) else lambda k: getattr(th, k, None)
    rate = get("expected_false_events_per_day")
    if rate is None:
        return ""
    ci = get("expected_false_events_per_day_ci")
    rule = get("post_rule") or {}
    return (
        f"expected false events {rate:.3g} per series per day"
        + (f" (95% CI {ci[0]:.3g}-{ci[1]:.3g})" if ci else "")
        + f" for a budget of {get('false_events_per_day'):.3g}, with post-rule "
        + params_text(rule)
    )


def per_series_text(th: Any, names: int = 5) -> str:
    """The per-series thresholds in words (``th``: a Threshold or its dict; '' without
    them): how many, their min/median/max, and the series that fell back to the fleet
    threshold (the first ``names`` of them by name, with the first one's reason)."""
    get = th.get if isinstance(th, dict) else lambda k: getattr(th, k, None)
    per, fallback = get("per_series") or {}, get("per_series_fallback") or {}
    if not per and not fallback:
        return ""
    text = "per series: "
    if per:
        v = list(per.values())
        text += (
            f"{len(v)} thresholds, min {min(v):.4g} / median {statistics.median(v):.4g} / "
            f"max {max(v):.4g}"
        )
    else:
        text += "no series had enough held-out data for a threshold of its own"
    fb = sorted(fallback)
    if fb:
        shown = ", ".join(fb[:names]) + (f" and {len(fb) - names} more" if len(fb) > names else "")
        text += (
            f"; {len(fb)} series fell back to the fleet threshold {get('value'):.4g}: {shown}; "
            f"why, for {fb[0]}: {fallback[fb[0]]}"
        )
    return text


def alarm_text(alarm: dict[str, Any]) -> str:
    if not alarm:
        return "not recorded (scoring uses its options' defaults)"
    text = "post-rule " + params_text(alarm.get("post_rule") or {})
    lk = alarm.get("likelihood")
    return text + (f"; likelihood {params_text(lk)}" if lk else "; fixed threshold")


def summary_text(r: dict[str, Any]) -> str:
    cfg, tr, th = r["config"], r["training"], r["threshold"]
    m = cfg["model"]
    lines = [
        f"anomae run {r['pipeline']}",
        f"  model      {m.get('kind', 'dense')} AE hidden={m.get('hidden')} on "
        f"{len(r['model']['features'])} features, window {r['model']['window']['length']} rows; "
        f"noise={cfg['noise'].get('kind', 'none')} sparsity={cfg['sparsity'].get('kind', 'none')}"
        + (f"; recipe {r['model']['recipe']} (auto)" if r["model"].get("recipe") else ""),
        f"  training   {tr['n_train_windows']:,} windows, {tr['epochs_run']} epochs (best "
        f"{tr['best_epoch']}), val loss {tr['best_val_loss']:.4g}, {tr['seconds']:.1f}s on "
        f"{tr['device']}"
        + (
            f"; left out (constant in training): {', '.join(tr['ignored_features'])}"
            if tr.get("ignored_features")
            else ""
        ),
        f"  export     {r['model']['path']} (onnx vs torch max rel diff "
        f"{r['model']['parity']['max_rel_diff']:.1e})",
        f"  threshold  {th['value']:.5g} by {th['method']} {params_text(th['params'])} on "
        f"{th['n_calibration']:,} held-out normal windows; expected false-alarm rate "
        f"{far_text(th['expected_far'], th.get('expected_far_ci'))}",
    ]
    if th.get("expected_false_events_per_day") is not None:
        lines.append(f"  events cal {false_events_text(th)}")
    if th.get("per_series") or th.get("per_series_fallback"):
        lines.append(f"  {per_series_text(th)}")
    if "int8" in r:
        lines.append(f"  int8       {_int8_run_text(r['int8'])}")
    if "scoring" in r:
        s = r["scoring"]
        by = " by the int8 model" if s.get("model", "").endswith(".int8.onnx") else ""
        lines.append(
            f"  scoring    {s['n_series']} series, {s['n_windows']:,} windows{by} in "
            f"{s['seconds']:.2f}s: {s['n_anomalous']:,} anomalous windows, {s['n_events']} events"
        )
    if "metrics" in r:
        mt = r["metrics"]
        p = mt["point"]
        lines.append(
            f"  metrics    AUC-ROC {mt['auc_roc']:.3f}  AUC-PR {mt['auc_pr']:.3f}  "
            f"point P/R/F1 {p['precision']:.2f}/{p['recall']:.2f}/{p['f1']:.2f}  "
            f"FAR {_pct(p['far'])}"
        )
        per_day = mt.get("false_events_per_day")
        lines.append(
            f"  events     {mt['segments_detected']}/{mt['segments']} labelled anomalies "
            f"detected, {mt['false_events']} of {mt['events']} events false"
            + (f" ({per_day:.2f} per day)" if per_day is not None else "")
            + (f"; event F1 {mt['event_f1']:.2f}" if "event_f1" in mt else "")
        )
        if "recall_by_kind" in mt:
            kinds = "  ".join(f"{k} {_pct(v)}" for k, v in mt["recall_by_kind"].items())
            lines.append(f"  by kind    {kinds}")
        if r.get("baselines"):
            lines += _baseline_lines(mt, r["baselines"])
    lines.append(f"  total      {r['seconds_total']:.1f}s")
    return "\n".join(lines)


def _baseline_lines(anomae: dict[str, Any], baselines: dict[str, Any]) -> list[str]:
    """The "what the model adds" table: anomae and each baseline through one alarm path."""
    lines = [
        "  vs         baselines with the same training rows, calibration and post-rules:",
        f"             {'detector':<18}{'AUC-ROC':>8}{'AUC-PR':>8}{'F1':>6}{'event F1':>10}"
        f"{'detected':>10}{'false/day':>11}",
    ]
    for name, m in {"anomae": anomae, **baselines}.items():
        if "error" in m:
            lines.append(f"             {name:<18}{m['error']}")
            continue
        per_day = m.get("false_events_per_day")
        lines.append(
            f"             {name:<18}{m['auc_roc']:>8.3f}{m['auc_pr']:>8.3f}"
            f"{m['point_after_post_rule']['f1']:>6.2f}{m['event_f1']:>10.2f}"
            f"{str(m['segments_detected']) + '/' + str(m['segments']):>10}"
            + (f"{per_day:>11.2f}" if per_day is not None else f"{'–':>11}")
        )
    lines.append(
        "             (F1 and event F1 of the windows inside events: after the post-rules)"
    )
    return lines


def _int8_text(q: dict[str, Any]) -> str:
    from anomae.quantize_gate import gate_text, speed_text

    how = f"{q.get('method')}, {q.get('quantized_products')} matrix products, "
    if q.get("fp32_layers"):
        how += f"layers {q['fp32_layers']} of {q.get('layers')} float32, "
    if q.get("small_calls") == "fp32":
        how += "one-window calls float32, "
    how += "gate: "
    how += gate_text(q["gate"]) if q.get("gate") else "not recorded"
    if q.get("speed"):  # cards written before the timing have none
        how += f"; speed: {speed_text(q['speed'])}"
    return how


def _int8_run_text(q: dict[str, Any]) -> str:
    """``anomae run``'s [export] quantize = "int8" outcome, in the summary."""
    if not q["written"]:
        return f"not written, scored in float32: {q['refused']}"
    return f"{q['path']} written: {_int8_text(q)}"


def columns_text(columns: dict[str, str | None]) -> str:
    """The card's table columns, as `anomae inspect` shows them."""
    unit = columns.get("timestamp_unit")
    time = columns.get("timestamp")
    return (
        ("no time column (rows in order, one a second)" if time == ROWS else f"timestamp '{time}'")
        + (f" (epoch {unit})" if unit else "")
        + f", series '{columns.get('series')}'"
        + (f", label '{columns['label']}'" if columns.get("label") else ", no label")
        + " (what scoring reads unless --timestamp-column, --series-column or --label-column"
        " says otherwise)"
    )


def parity_text(parity: dict[str, Any]) -> str:
    """The export's ONNX-against-torch check (:func:`anomae.train.export.check_parity`) and
    the reference windows kept for the load check (:mod:`anomae.reference`), in one line;
    keys it does not know (older cards) are shown as they are."""
    if not parity:
        return "not recorded"
    p = dict(parity)
    parts = []
    if "rtol" in p and "atol" in p:
        parts.append(f"ONNX and torch agree within {p.pop('atol'):g} + {p.pop('rtol'):g} x |torch|")
    if "max_rel_diff" in p:
        parts.append(f"worst relative difference {float(p.pop('max_rel_diff')):.2g}")
    if "n_windows" in p:
        cases = p.pop("cases", None)
        how = f" in {len(cases)} cases ({'; '.join(map(str, cases))})" if cases else ""
        parts.append(f"over {int(p.pop('n_windows')):,} windows{how}")
    ref = p.pop("reference", None)
    if isinstance(ref, dict):
        parts.append(f"{len(ref.get('score') or [])} reference windows re-scored on every load")
    parts += [f"{k} {v}" for k, v in p.items()]
    return ", ".join(parts)


def architecture_text(arch: dict[str, Any]) -> str:
    """The card's network and score (:func:`anomae.train.step.train_step`) in words; keys it
    does not know are shown as they are."""
    a = dict(arch)
    kind, hidden = a.pop("kind", "?"), list(a.pop("hidden", None) or [])
    act, code_act = a.pop("activation", None), a.pop("code_activation", None)
    channels, kernel = a.pop("channels", None), a.pop("kernel", None)
    widths = "-".join(str(h) for h in hidden)
    parts = [f"conv AE, channels {'-'.join(map(str, channels or []))}, kernel {kernel}, "
             f"dense {widths}" if kind == "conv" else f"{kind} AE {widths}"]  # fmt: skip
    if len(hidden) > 1 or kind == "conv":
        parts.append(f"{act} layers")
    if hidden:
        sized = " (one unit per feature varying in training)" if a.get("code") == "features" else ""
        parts.append(f"{code_act} code of {hidden[-1]}{sized}")
    a.pop("code", None)
    a.pop("layout", None)  # follows from kind
    center = a.pop("center", False)
    if center is True:
        parts.append("every feature centred per window")
    elif center:
        parts.append(f"centred per window: {', '.join(map(str, center))}")
    if "aggregate" in a:
        parts.append(f"window score = {a.pop('aggregate')} of the feature errors")
    parts += [f"{k} {v}" for k, v in a.items()]
    return ", ".join(parts)


def training_text(training: dict[str, Any]) -> str:
    """How the card's model was trained: windows, epochs, corruption and sparsity."""
    noise, sparse = training.get("noise") or {}, training.get("sparsity") or {}
    kind = noise.get("kind", "none")
    how = {"none": "no noise", "gaussian": f"gaussian noise sigma {noise.get('sigma')}"}.get(
        kind, f"{kind} noise p {noise.get('p')}"
    )
    n = training.get("n_train_windows", "?")
    text = f"{n:,}" if isinstance(n, int) else str(n)
    text += f" windows, {training.get('epochs_run', '?')} epochs, {how}"
    if sparse.get("kind", "none") != "none":
        text += f", {sparse['kind']} sparsity rho {sparse.get('rho')} beta {sparse.get('beta')}"
    return text


def lineage_text(lineage: dict[str, Any]) -> str:
    """A retrained model's origin (:mod:`anomae.retrain`), as `anomae inspect` shows it."""
    import datetime as dt

    span = lineage.get("data_span") or []
    when = " to ".join(
        dt.datetime.fromtimestamp(float(t), dt.UTC).isoformat(timespec="seconds") for t in span
    )
    return (
        f"retrained from {str(lineage.get('parent_sha256', '?'))[:16]} "
        f"(created {lineage.get('parent_created_at', '?')}) on {when or 'unknown span'}, "
        f"{lineage.get('rows', '?')} rows used, {lineage.get('rows_dropped', '?')} dropped"
    )


def card_text(card: ModelCard, path: str) -> str:
    th = card.threshold
    lines = [
        f"{path}",
        f"  format       {card.format_version}, created {card.created_at}",
        f"  features     {', '.join(card.features)}",
        f"  columns      {columns_text(card.columns)}",
        f"  window       {card.window.length} rows, stride {card.window.stride}; "
        + (
            f"a gap over {card.max_gap_s:g} s restarts it (median interval {card.interval_s:g} s)"
            if card.max_gap_s > 0
            else "no gap rule (score windows across gaps; the monitor: auto)"
        ),
        f"  architecture {architecture_text(card.architecture)}",
        "  threshold    "
        + (
            "none (run `anomae calibrate`)"
            if th is None
            else f"{th.value:.6g} by {th.method} {params_text(th.params)}, {th.n_calibration:,} "
            f"calibration windows, expected false-alarm rate "
            f"{far_text(th.expected_far, th.expected_far_ci)}"
            + (f"; per feature {params_text(th.per_feature)}" if th.per_feature else "")
            + (f"; {false_events_text(th)}" if th.expected_false_events_per_day is not None else "")
            + (f"\n               {per_series_text(th)}" if per_series_text(th) else "")
        ),
        f"  alarm        {alarm_text(card.alarm)}",
        f"  training     {training_text(card.training)}",
        f"  parity       {parity_text(card.parity)}",
        *([f"  int8         {_int8_text(card.quantization)}"] if card.quantization else []),
        f"  data         {card.data_fingerprint}",
        *([f"  lineage      {lineage_text(card.lineage)}"] if card.lineage else []),
        f"  versions     {card.versions}",
    ]
    return "\n".join(lines)
