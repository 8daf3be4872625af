"""A self-contained HTML report: tables and plots inlined, nothing fetched from the network.

Plots are drawn with matplotlib (without pyplot, so no GUI backend or global state) and embedded
as base64 PNG ``data:`` URIs; the page has no scripts and no external stylesheet, so it renders
the same offline, in a CI artifact or attached to an e-mail.
"""

from __future__ import annotations

import base64
import html
import io
import warnings

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..core.schema import category_text
from .drift import ColumnDrift, Numbers, finite_numbers
from .prediction_log import Unreadable
from .profile import Reference
from .report import (
    CanaryComparison,
    DataQuality,
    ModelQuality,
    MonitorSummary,
    ShadowComparison,
)

MAX_CATEGORIES = 12
MAX_LABEL = 24  # characters of a category's tick label
BINS = 30
PLOTTABLE = (1e-300, 1e300)  # magnitudes plotted as they are
MAX_PLOTS = 16
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.bad { background: #ffebe9; } .good { background: #dafbe1; }
.status { font-size: 1.3rem; padding: .6rem 1rem; display: inline-block; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; } figcaption { font-size: .9rem; }
"""


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # categories in scripts the font lacks: drawn as boxes
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        figure.savefig(buffer, format="png", dpi=72)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def distribution_plot(reference: pd.Series, current: pd.Series, numeric: bool) -> str:
    """Reference and current distributions of one column, as a base64 PNG."""
    figure = Figure(figsize=(4, 2.4), layout="constrained")
    axes = figure.subplots()
    if numeric:
        ref, cur = finite_numbers(reference), finite_numbers(current)
        exponent = _exponent(np.concatenate([ref, cur]))
        ref, cur = np.ldexp(ref, -exponent), np.ldexp(cur, -exponent)
        edges = _edges(np.concatenate([ref, cur]))
        for values, label in ((ref, "reference"), (cur, "current")):
            if len(values):  # one filled step line per side: far cheaper to draw than bars
                counts, _ = np.histogram(values, bins=edges)
                axes.stairs(counts / len(values), edges, fill=True, alpha=0.5, label=label)
        axes.set_xlim(edges[0], edges[-1])
        if exponent:
            axes.set_xlabel(f"value / 2^{exponent}", fontsize=7)
    else:
        ref_share = category_text(reference.dropna()).value_counts(normalize=True)
        cur_share = category_text(current.dropna()).value_counts(normalize=True)
        names = list(ref_share.index.union(cur_share.index))[:MAX_CATEGORIES]
        positions = np.arange(len(names))
        for offset, share, label in ((-0.2, ref_share, "reference"), (0.2, cur_share, "current")):
            axes.bar(positions + offset, [share.get(n, 0.0) for n in names], 0.4, label=label)
        axes.set_xticks(positions, [_label(name) for name in names], rotation=30, fontsize=7)
    axes.legend(fontsize=7)
    axes.tick_params(labelsize=7)
    return _png(figure)


def _exponent(values: Numbers) -> int:
    """0, or the power of two to divide values by when they are too large or too small for
    bins and axes: both take differences, which overflow (or vanish) at the float limits."""
    magnitude = float(np.abs(values).max()) if len(values) else 0.0
    if magnitude == 0 or PLOTTABLE[0] < magnitude < PLOTTABLE[1]:
        return 0
    return int(np.frexp(magnitude)[1])


def _edges(values: Numbers) -> Numbers:
    """``BINS`` equal bins over the values' range; fewer when it holds too few floats."""
    if not len(values):
        return np.array([0.0, 1.0])
    low, high = float(values.min()), float(values.max())
    if low == high:  # one value: one bin around it
        half = abs(low) / 100 or 0.5
        return np.array([low - half, high + half])
    try:
        edges: Numbers = np.histogram_bin_edges(values, bins=BINS)
    except ValueError:  # fewer than BINS floats between the two (e.g. 1 and 1 + 2e-16)
        return np.array([low, high])
    return edges


def _label(category: str) -> str:
    """A category as a tick label: short, printable, with ``$`` not read as mathtext (whose
    parser fails on text such as ``$x^$``)."""
    text = category if len(category) <= MAX_LABEL else category[: MAX_LABEL - 1] + "\u2026"
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return printable.replace("$", r"\$")


def _cell(value: object) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _row(*values: object) -> str:
    return "<tr>" + "".join(_cell(value) for value in values) + "</tr>"


def _head(*names: str) -> str:
    return "<tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in names) + "</tr>"


def _drift_table(rows: list[ColumnDrift]) -> str:
    head = _head("column", "type", "test", "p-value", "effect", "drift")
    body = "".join(
        f"<tr class={'bad' if row.drifted else 'good'}>"
        + "".join(_cell(v) for v in (row.label, row.kind, row.test, row.p_value, row.effect))
        + f"<td>{'yes' if row.drifted else 'no'}</td></tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _figure_html(drift: ColumnDrift, reference: pd.Series, current: pd.Series) -> str:
    image = distribution_plot(reference, current, numeric=drift.kind == "numeric")
    caption = html.escape(drift.label) + (" (drifted)" if drift.drifted else "")
    return (
        f"<figure><img alt='{html.escape(drift.column, quote=True)}' "
        f"src='data:image/png;base64,{image}'><figcaption>{caption}</figcaption></figure>"
    )


def _unreadable(unreadable: Unreadable) -> str:
    """What reading the prediction log skipped: lines by reason, values read as missing."""
    if not unreadable.lines and not unreadable.values:
        return ""
    lines = "".join(_row(reason, count) for reason, count in unreadable.lines.items())
    values = "".join(_row(column, count) for column, count in unreadable.values.items())
    examples = "".join(f"<li>{html.escape(where)}</li>" for where in unreadable.examples)
    return (
        f"<h3>Unreadable input</h3><p>{unreadable.lines_read} lines of the prediction log read, "
        f"{unreadable.lines_skipped} skipped.</p>"
        + (f"<table>{_head('line skipped because', 'lines')}{lines}</table>" if lines else "")
        + (f"<p>First skipped:</p><ul>{examples}</ul>" if examples else "")
        + (
            f"<table>{_head('column', 'values not finite numbers (read as missing)')}"
            f"{values}</table>"
            if values
            else ""
        )
    )


def _status(summary: MonitorSummary) -> str:
    if summary.passed:
        return '<p class="status good">no threshold crossed</p>'
    alerts = "".join(f"<li>{html.escape(alert)}</li>" for alert in summary.alerts)
    status = f'<p class="status bad">alerts:</p><ul>{alerts}</ul>' if alerts else ""
    missing = "".join(f"<li>{html.escape(reason)}</li>" for reason in summary.not_checked)
    if missing:
        status += f'<p class="status bad">not checked:</p><ul>{missing}</ul>'
    return status


def _plots(columns: list[ColumnDrift], reference: Reference, current: pd.DataFrame) -> str:
    # Drifted columns first, then by effect size; each plot takes a moment to draw.
    ranked = sorted(columns, key=lambda c: (not c.drifted, -(c.effect or 0.0)))[:MAX_PLOTS]
    plots = "".join(_figure_html(c, reference.sample[c.column], current[c.column]) for c in ranked)
    if len(columns) > MAX_PLOTS:
        plots += f"<p>{len(columns) - MAX_PLOTS} more columns, not drifted, are not plotted.</p>"
    return plots


def _quality(quality: ModelQuality | None) -> str:
    if quality is None:
        return ""
    head = _head("metric", "reference", "current", "labelled rows")
    row = _row(quality.metric, quality.reference, quality.current, quality.labelled_rows)
    return f"<h2>Model quality</h2><table>{head}{row}</table>"


def _shadow(shadow: ShadowComparison | None) -> str:
    if shadow is None:
        return ""
    head = _head("rows", "agreement", "mean |difference|")
    row = _row(shadow.rows, shadow.agreement, shadow.mean_abs_difference)
    drift = _drift_table([shadow.champion, shadow.challenger])
    return f"<h2>Shadow model</h2><table>{head}{row}</table>{drift}"


def _canary(canary: CanaryComparison | None) -> str:
    if canary is None:
        return ""
    head = _head("served by", "versions", "rows", "metric", "value", "labelled rows")
    rows = "".join(
        _row(
            arm.served_by,
            ", ".join(arm.model_versions),
            arm.rows,
            *(
                (arm.quality.metric, arm.quality.current, arm.quality.labelled_rows)
                if arm.quality
                else (None, None, None)
            ),
        )
        for arm in canary.arms
    )
    return f"<h2>Canary release ({100 * canary.share:.1f}% of rows)</h2><table>{head}{rows}</table>"


def _data_quality(rows: list[DataQuality]) -> str:
    head = _head("column", "missing (reference)", "missing (current)", "out of range / unseen")
    body = "".join(
        _row(d.column, d.missing_reference, d.missing_current, d.out_of_range) for d in rows
    )
    return f"<h2>Data quality</h2><table>{head}{body}</table>"


def render_html(summary: MonitorSummary, reference: Reference, current: pd.DataFrame) -> str:
    """The report page for ``summary``, with one distribution plot per tested column."""
    columns = list(summary.features) + ([summary.prediction] if summary.prediction else [])
    sampled = f" (a seeded sample of {summary.table_rows})" if summary.table_rows else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Monitoring report</title><style>{STYLE}</style></head><body>"
        f"<h1>Monitoring report</h1><p>{summary.current_rows} current rows{sampled} against "
        f"{summary.reference_rows} reference rows, {html.escape(summary.generated_at)}</p>"
        f"{_status(summary)}<h2>Drift</h2>{_drift_table(columns)}{_quality(summary.quality)}"
        f"{_shadow(summary.shadow)}{_canary(summary.canary)}{_data_quality(summary.data_quality)}"
        f"{_unreadable(summary.unreadable)}"
        f"<h2>Distributions</h2><div class='plots'>{_plots(columns, reference, current)}</div>"
        "</body></html>\n"
    )
