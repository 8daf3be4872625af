"""Render `dvc plots diff --json` as Markdown that GitHub and GitLab show inline.

Pictures in a pull/merge request comment need no image host this way: curves become Mermaid
`xychart-beta` charts (one line per revision), a confusion matrix becomes a table. Plots of
other shapes (scatter) are left to the HTML report in the CI artifacts.

Usage: uv run dvc plots diff BASE --json | uv run python ci/plots_markdown.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

POINTS = 21  # x positions per curve: enough for its shape, small enough to read
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
COLOR_NAMES = ("blue", "orange", "green", "red")


def _floats(rows: list[dict[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    points = []
    for row in rows:
        try:
            points.append((float(row[x]), float(row[y])))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(points)


def resample(points: list[tuple[float, float]], grid: list[float]) -> list[float]:
    """The curve's y at each grid x: linear between neighbours, flat beyond the ends."""
    values = []
    for gx in grid:
        left = [p for p in points if p[0] <= gx]
        right = [p for p in points if p[0] >= gx]
        if not left:
            values.append(right[0][1])
        elif not right:
            values.append(left[-1][1])
        else:
            (x0, y0), (x1, y1) = left[-1], right[0]
            values.append(y0 if x1 == x0 else y0 + (y1 - y0) * (gx - x0) / (x1 - x0))
    return values


def curve(title: str, content: dict[str, Any], revisions: list[str]) -> str:
    x = content["encoding"]["x"]["field"]
    y = content["encoding"]["y"]["field"]
    rows = content["data"]["values"]
    curves = {rev: _floats([r for r in rows if r.get("rev") == rev], x, y) for rev in revisions}
    curves = {rev: points for rev, points in curves.items() if points}
    if not curves:
        return ""
    xs = [p[0] for points in curves.values() for p in points]
    low, high = min(xs), max(xs)
    grid = [low + (high - low) * i / (POINTS - 1) for i in range(POINTS)]
    series = [resample(points, grid) for points in curves.values()]
    ys = [v for values in series for v in values]
    # Rates and scores in [0, 1] keep that scale, so a small change does not look large.
    y_range = " 0 --> 1" if min(ys) >= 0 and max(ys) <= 1 else ""
    # Built up step by step: nested literals would put Jinja's brace pairs in this template.
    xy_chart = {"plotColorPalette": ", ".join(COLORS[: len(curves)])}
    variables = {"xyChart": xy_chart}
    theme = {"themeVariables": variables}
    legend = ", ".join(
        f"{COLOR_NAMES[i]}: `{rev}`" for i, rev in enumerate(curves) if i < len(COLORS)
    )
    lines = [
        "```mermaid",
        "%%{init: " + json.dumps(theme) + "}%%",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "{x}" [{", ".join(f"{g:.2f}" for g in grid)}]',
        f'    y-axis "{y}"{y_range}',
    ]
    lines += [f"    line [{', '.join(f'{v:.4f}' for v in values)}]" for values in series]
    return "\n".join([f"**{title}** ({legend})", "", *lines, "```"])


def confusion(title: str, content: dict[str, Any], revisions: list[str]) -> str:
    encoding = content["spec"]["encoding"]
    actual, predicted = encoding["x"]["field"], encoding["y"]["field"]
    rows = content["data"]["values"]
    counts: dict[str, Counter[tuple[str, str]]] = {rev: Counter() for rev in revisions}
    for r in rows:
        if r.get("rev") in counts:
            # a `count` per pair (evaluate since 0.6.0), or one row per test row (before)
            counts[r["rev"]][(str(r[actual]), str(r[predicted]))] += int(float(r.get("count", 1)))
    labels = sorted({label for c in counts.values() for pair in c for label in pair})
    if not labels:
        return ""
    header = f"| {actual} \\ {predicted} | " + " | ".join(labels) + " |"
    lines = [
        f"**{title}** (counts: {' → '.join(f'`{rev}`' for rev in revisions)})",
        "",
        header,
        "|---" * (len(labels) + 1) + "|",
    ]
    for a in labels:
        cells = [" → ".join(str(counts[rev][(a, p)]) for rev in revisions) for p in labels]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(plots: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown for every plot that has an inline form; a note for the others."""
    sections, skipped = [], []
    for title, items in plots.items():
        for item in items:
            content = item.get("content", {})
            # Base first, then this change: `dvc plots diff` lists the workspace first.
            revisions = list(reversed(item.get("revisions", [])))
            mark = content.get("mark")
            kind = mark.get("type") if isinstance(mark, dict) else mark
            if "spec" in content and "facet" in content:
                text = confusion(title, content, revisions)
            elif kind == "line":
                text = curve(title, content, revisions)
            else:
                text = ""
            if text:
                sections.append(text)
            else:
                skipped.append(title)
    if skipped:
        sections.append(f"Not drawn here (see the HTML report): {', '.join(skipped)}.")
    return "\n\n".join(sections) + "\n"


def main() -> int:
    data = json.load(sys.stdin)
    sys.stdout.write(render(data.get("data", {})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
