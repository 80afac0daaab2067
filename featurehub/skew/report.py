"""The skew check's HTML report (`featurehub skew --html PATH`, `SkewReport.to_html(path)`):
one self-contained page that opens without a server or network, plotly's JavaScript inlined
once in its head (docs/skew-checks.md, "The report").

The page is drawn from the check's result objects alone (the shares, the timeline and the lag
histogram are computed by the checks, `featurehub.skew.histograms`): a summary, then one
section per feature, failing ones first, with the training and served distributions, the
mismatches over time by cause, the staleness of stale rows and example mismatching rows. The
template (`templates/report.html.j2`) is Jinja2 with autoescape on: every string from the
data or the definitions is escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from featurehub.errors import FeaturehubError
from featurehub.skew.distribution import FeatureDrift
from featurehub.skew.replay_result import CAUSES, STALE, FeatureReplay
from featurehub.skew.report_charts import (
    CAUSE_LABELS,
    distribution_figure,
    duration,
    lag_figure,
    timeline_figure,
)

if TYPE_CHECKING:
    from featurehub.skew.check import SkewReport

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
STATUS_ORDER = {"fail": 0, "warn": 1, "insufficient_data": 2, "pass": 3}


class ReportError(FeaturehubError):
    """The report cannot be written where asked."""


@dataclass(frozen=True)
class FeatureSection:
    """What the page shows of one feature: its verdict over both checks, why, its charts."""

    name: str
    status: str  # fail, warn, insufficient_data or pass
    reasons: list[str]
    replay: FeatureReplay | None
    drift: FeatureDrift | None
    charts: list[Markup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "feature-" + "".join(c if c.isalnum() else "-" for c in self.name)


def render_html(report: SkewReport) -> str:
    """The whole page, as text."""
    sections = feature_sections(report)
    return _template().render(
        report=report,
        replay=report.replay,
        distribution=report.distribution,
        sections=sections,
        failing=[section for section in sections if section.status == "fail"],
        causes=CAUSES,
        cause_labels=CAUSE_LABELS,
        window=duration((report.end - report.start).total_seconds()),
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
        generated=datetime.now(timezone.utc),
    )


def write_html(report: SkewReport, path: str | Path) -> Path:
    """Write the page to `path` (its folder must exist); returns the path."""
    target = report_path(path)
    try:
        target.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report to {target}: {exc.strerror}") from exc
    return target


def report_path(path: str | Path) -> Path:
    """`path` when a report can be written there (checked before a long check runs)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise ReportError(
            f"cannot write the report to {target}: the folder {target.parent} does not exist; "
            "create it or give another path"
        )
    if target.is_dir():
        raise ReportError(f"cannot write the report to {target}: it is a folder; name a file")
    return target


def inline_html(report: SkewReport) -> str:
    """The page in an iframe, for a notebook: its scripts and styles stay inside it."""
    page = html.escape(render_html(report), quote=True)
    return (
        f'<iframe srcdoc="{page}" style="width: 100%; height: 900px; border: 1px solid #ddd" '
        'sandbox="allow-scripts"></iframe>'
    )


def feature_sections(report: SkewReport) -> list[FeatureSection]:
    """One section per feature of either check, failing ones first, then by name."""
    drifts = list(report.distribution.features) if report.distribution else []
    sections = []
    for feature in report.replay.features:
        matching = [d for d in drifts if d.feature in (feature.feature, _full_name(feature))]
        drift = matching[0] if matching else None
        if drift is not None:
            drifts.remove(drift)
        sections.append(_section(feature.name, feature, drift))
    sections += [_section(d.feature, None, d) for d in drifts]
    return sorted(sections, key=lambda s: (STATUS_ORDER[s.status], s.name))


def replay_reasons(feature: FeatureReplay) -> list[str]:
    """Why the replay failed the feature (the thresholds it crossed, its own or the
    `monitoring:` ones) and, for stale rows within the allowance, what it let pass."""
    reasons = list(feature.failures())
    stale = feature.causes[STALE]
    allowed = feature.thresholds.max_stale_rate
    if stale and feature.stale_rate <= allowed:
        reasons.append(
            f"{stale:,} stale rows ({feature.stale_rate:.2%}), within the "
            f"{allowed:.2%} allowed (max_stale_rate)"
        )
    return reasons


def _section(
    name: str, feature: FeatureReplay | None, drift: FeatureDrift | None
) -> FeatureSection:
    statuses = []
    reasons: list[str] = []
    charts: list[go.Figure] = []
    notes: list[str] = []
    if drift is not None:
        statuses.append(drift.status)
        reasons += [f"distribution: {reason}" for reason in drift.reasons]
        figure = distribution_figure(drift)
        if figure is None:
            notes.append("No distribution chart: the training set holds no value of it.")
        else:
            charts.append(figure)
    if feature is not None:
        statuses.append("pass" if feature.passed else "fail")
        reasons += [f"replay: {reason}" for reason in replay_reasons(feature)]
        if feature.timeline is not None:
            charts.append(timeline_figure(feature.timeline))
        if feature.lag_histogram is not None:
            charts.append(lag_figure(feature.lag_histogram))
        else:
            notes.append("No staleness chart: no stale mismatch in the window.")
    status = min(statuses, key=STATUS_ORDER.__getitem__) if statuses else "pass"
    return FeatureSection(name, status, reasons, feature, drift, _divs(charts), notes)


def _divs(figures: list[go.Figure]) -> list[Markup]:
    """Each figure as a div and the script that draws it (plotly.js is in the page's head)."""
    return [
        Markup(f.to_html(full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG))
        for f in figures
    ]


def _full_name(feature: FeatureReplay) -> str:
    return f"{feature.view}__{feature.feature}"


def _when(value: Any) -> str:
    """A time as `2026-12-01 08:12:00.512 UTC`; anything else as it is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + (" UTC" if value.utcoffset() is not None else "")


def _figure(value: float | None, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)


@cache
def _template() -> Any:
    environment = Environment(
        loader=PackageLoader("featurehub.skew", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["figure"] = _figure
    return environment.get_template("report.html.j2")
