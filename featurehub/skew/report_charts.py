"""The plotly figures of the skew report, one function per chart, drawn from the check's
result objects alone (`featurehub.skew.report` lays them out on the page).

Plotly reads text as a little HTML (`<b>`, `<br>`, entities), so every label taken from the
data (a category, a feature name) is escaped first: it is shown as written, never as markup.
"""

from __future__ import annotations

import html
import itertools
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from featurehub.skew.distribution import OTHER, FeatureDrift
from featurehub.skew.histograms import LagHistogram, Timeline
from featurehub.skew.replay_result import CAUSES

TRAINING_COLOR = "#4c72b0"
SERVED_COLOR = "#dd8452"
CAUSE_COLORS = {
    "stale": "#e6a817",
    "value_skew": "#c44e52",
    "ttl_or_status": "#8172b3",
    "unexplained": "#7f7f7f",
}
CAUSE_LABELS = {
    "stale": "stale (materialization lag)",
    "value_skew": "value skew",
    "ttl_or_status": "TTL or status disagreement",
    "unexplained": "unexplained",
}
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 60, "t": 50, "b": 40},
    # below everything, the axis title and tick labels included (they push the plot up)
    "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
    "title": {"font": {"size": 14}, "x": 0.01, "xanchor": "left"},
}
_UNITS = ((86400.0, "days"), (3600.0, "hours"), (60.0, "minutes"), (1.0, "seconds"))


def label(value: Any) -> str:
    """A value from the data as plotly text: escaped, so it reads as written."""
    return html.escape(str(value), quote=False)


def distribution_figure(drift: FeatureDrift) -> go.Figure | None:
    """Training and served shares side by side, per PSI bin (numbers) or category; None when
    the check kept no shares (the training set has no value of the feature)."""
    if drift.bins is not None:
        names = bin_labels(drift.bins.edges)
        training, served = drift.bins.training_share, drift.bins.served_share
        axis = "bin (training deciles, as for PSI)"
        measure = "" if drift.psi is None else f" (PSI {drift.psi:.3f})"
    elif drift.category_shares is not None:
        shares = drift.category_shares
        names = ["(other)" if value == OTHER else label(value) for value in shares.values]
        training, served = shares.training_share, shares.served_share
        axis = "category"
        measure = "" if drift.js_distance is None else f" (JS {drift.js_distance:.3f})"
    else:
        return None
    figure = go.Figure(
        [
            go.Bar(name="training", x=names, y=training, marker_color=TRAINING_COLOR),
            go.Bar(name="served", x=names, y=served, marker_color=SERVED_COLOR),
        ]
    )
    figure.update_layout(
        _LAYOUT,
        barmode="group",
        title_text=f"Training vs served{measure}",
        xaxis_title=axis,
        yaxis_title="share of values (not null)",
        yaxis_tickformat=".0%",
    )
    figure.update_xaxes(type="category")
    return figure


def bin_labels(edges: list[float]) -> list[str]:
    """`< e1`, `[e1, e2)`, ..., `>= ek`; one bin `all values` without an edge."""
    if not edges:
        return ["all values"]
    text = [f"{edge:.4g}" for edge in edges]
    middle = [f"[{a}, {b})" for a, b in itertools.pairwise(text)]
    return [f"< {text[0]}", *middle, f"≥ {text[-1]}"]


def timeline_figure(timeline: Timeline) -> go.Figure:
    """Mismatched rows per time bucket, stacked by cause, over the rows compared."""
    starts = timeline.bucket_starts()
    width_ms = timeline.bucket_seconds * 1000
    middles = [start + timedelta(seconds=timeline.bucket_seconds / 2) for start in starts]
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for cause in CAUSES:
        figure.add_trace(
            go.Bar(
                name=CAUSE_LABELS[cause],
                x=middles,
                y=timeline.causes[cause],
                width=width_ms,
                marker_color=CAUSE_COLORS[cause],
            ),
            secondary_y=False,
        )
    figure.add_trace(
        go.Scatter(
            name="rows compared",
            x=middles,
            y=timeline.rows,
            mode="lines",
            line={"color": "#999999", "dash": "dot", "shape": "hv"},
        ),
        secondary_y=True,
    )
    end = starts[-1] + timedelta(seconds=timeline.bucket_seconds) if starts else timeline.start
    figure.update_layout(
        _LAYOUT,
        barmode="stack",
        title_text=f"Mismatches by cause, per {duration(timeline.bucket_seconds)} of serving",
    )
    figure.update_xaxes(title_text="served at (UTC)", range=[timeline.start, end])
    figure.update_yaxes(title_text="mismatched rows", rangemode="tozero", secondary_y=False)
    figure.update_yaxes(
        title_text="rows compared", rangemode="tozero", showgrid=False, secondary_y=True
    )
    return figure


def lag_figure(histogram: LagHistogram) -> go.Figure:
    """Stale rows by how much older the served event was, in the unit that reads best."""
    scale, unit = next(
        ((size, name) for size, name in _UNITS if histogram.edges_seconds[-1] >= 2 * size),
        _UNITS[-1],
    )
    edges = [edge / scale for edge in histogram.edges_seconds]
    figure = go.Figure(
        go.Bar(
            name="stale rows",
            x=[(a + b) / 2 for a, b in itertools.pairwise(edges)],
            y=histogram.counts,
            width=[max(b - a, 1e-9) for a, b in itertools.pairwise(edges)],
            marker_color=CAUSE_COLORS["stale"],
        )
    )
    figure.update_layout(
        _LAYOUT,
        title_text="Staleness of the stale rows",
        xaxis_title=f"lag: offline event time minus served event time ({unit})",
        yaxis_title="stale rows",
        showlegend=False,
    )
    return figure


def duration(seconds: float) -> str:
    """`2 min`, `30 s`, `3 h`, `1 d`, `200 ms`: a bucket width as people say it."""
    for size, name in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"), (1e-3, "ms")):
        if seconds >= size:
            return f"{seconds / size:.3g} {name}"
    return f"{seconds * 1e6:.3g} µs"
