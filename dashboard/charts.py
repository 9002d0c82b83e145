"""Pure Plotly chart builders: plain data in, ``go.Figure`` out.

Used by the Streamlit pages and by the HTML report; imports neither Streamlit
nor torch. Every builder:

- titles its chart and labels its axes with units ("ULP distance", "absolute error");
- puts the figures in the hover text;
- leaves background and text colours to the theme (transparent backgrounds,
  semi-transparent grid lines, no font colour), so it reads in light and dark;
- colours data with the Okabe-Ito colour-blind-safe palette, and never by colour
  alone: verdicts also carry their word and icon (``dashboard.format``);
- treats every label it is given as plain text (escaped: Plotly would read
  ``<b>`` or ``<a href>`` in a label as markup);
- answers empty input with an annotated figure that says why it is empty;
- draws a bounded number of points whatever the array size: element charts
  are drawn from a small summary (``dashboard.element_data``: histogram
  counts, a sample of at most ``POINT_CAP`` points, a grid of at most
  ``HEATMAP_MAX`` block maxima) computed a chunk at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go

from driftboard.core.compare.metrics import LayerDivergence
from driftboard.core.compare.own import Change, ModuleChange
from driftboard.core.compare.verdict import Verdict
from driftboard.core.run import ArraySource, CaseResult
from driftboard.dashboard.decode_budget import DecodeBudget, DecodeBudgetExceeded
from driftboard.dashboard.element_data import (  # HEATMAP_MAX: re-exported, readers know it as charts.HEATMAP_MAX
    HEATMAP_MAX,  # noqa: F401
    POINT_CAP,
    ElementCharts,
    ElementRequest,
    HeatmapGrid,
    ScatterSample,
    UlpBins,
    heatmap_grid,
    scatter_sample,
    ulp_bins,
)
from driftboard.dashboard.format import (
    MISSING,
    VERDICT_STYLES,
    as_verdict,
    case_key_text,
    fmt_abs,
    fmt_count,
    fmt_rel,
    fmt_shape,
    fmt_time,
    fmt_ulp,
    parse_time,
    plotly_text,
    verdict_style,
)

if TYPE_CHECKING:
    from driftboard.core.audit import TimelineEvent, TimelinePoint
    from driftboard.core.compare.runs import CaseComparison
    from driftboard.core.compare.training import TrainingComparison

# Okabe-Ito (colour-blind safe) roles; verdict colours live in dashboard.format.
BLUE = "#0072B2"
SKY = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#8C8C8C"
GRID = "rgba(128, 128, 128, 0.25)"
ZERO_LINE = "rgba(128, 128, 128, 0.55)"
DIVERGING = "RdBu_r"  # blue below zero, red above; red-blue stays distinct for colour-blind readers

Summarise = Callable[[ElementRequest], ElementCharts]  # ElementRequest.compute, or a cache in front of it


# ---------------------------------------------------------------- shared helpers


def _styled(
    fig: go.Figure,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    subtitle: str | None = None,
    height: int = 380,
    *,
    xaxis: dict[str, Any] | None = None,
    yaxis: dict[str, Any] | None = None,
    **layout: Any,
) -> go.Figure:
    """Common layout in one update (Plotly's per-call validation is most of a chart's build time):
    title (plain text, escaped), axis titles, transparent backgrounds, grid lines for either theme."""
    text = plotly_text(title, 160)
    if subtitle:
        text += f"<br><sup>{plotly_text(subtitle, 240)}</sup>"
    axis = {"gridcolor": GRID, "zerolinecolor": ZERO_LINE, "automargin": True}
    fig.update_layout({
        "title": {"text": text, "x": 0.0, "xanchor": "left"},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 80 if subtitle else 60, "b": 100},
        "hovermode": "closest",
        # below the x-axis title: above the plot it would cover the subtitle
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0},
        "xaxis": {**axis, "title": {"text": x_title}, **(xaxis or {})},
        "yaxis": {**axis, "title": {"text": y_title}, **(yaxis or {})},
        **layout,
    })
    return fig


def empty_figure(title: str, message: str, height: int = 260) -> go.Figure:
    """A figure with no data and ``message`` in its middle, saying why there is nothing to draw."""
    note = {"text": plotly_text(message, 300), "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
            "showarrow": False, "font": {"size": 14}}
    return _styled(go.Figure(), title, height=height, xaxis={"visible": False}, yaxis={"visible": False},
                   annotations=[note])


def _hover(text: Any) -> str:
    """Plain multi-line text for a hover box: each line escaped, lines joined by ``<br>``."""
    lines = str(text if text is not None else "").splitlines() or [""]
    return "<br>".join(plotly_text(line, 200) for line in lines)


def _spans_decades(values: Sequence[float], decades: float = 2.0) -> bool:
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return len(positive) > 1 and math.log10(max(positive) / min(positive)) >= decades


def _index_text(flat: np.ndarray, shape: tuple[int, ...]) -> list[str]:
    if len(shape) <= 1:
        return [f"[{int(i)}]" for i in flat]
    coords = np.unravel_index(flat, shape)
    return ["[" + ", ".join(str(int(c[k])) for c in coords) + "]" for k in range(len(flat))]


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow2(k: int) -> str:
    return f"{1 << k:,}" if k < 10 else "2" + str(k).translate(_SUPERSCRIPT)


# ---------------------------------------------------------------- ULP histogram


def ulp_histogram(
    distances: np.ndarray | UlpBins, title: str = "ULP distance per element", dtype: str | None = None
) -> go.Figure:
    """Elements per ULP distance, in power-of-two bins, counts on a log scale.

    Bins: ``0`` (bitwise equal or ±0), then ``1``, ``2–3``, ``4–7``, … up to the
    largest distance, and a separate ``NaN vs number`` bar for core.compare's NaN
    marker (``NAN_DISTANCE[dtype]``; without ``dtype``, any float format's marker).
    Float input may use NaN for that marker. ``distances`` may also be the
    ``UlpBins`` already counted (``element_data.ulp_bins_of``): at most 66 bars either way.
    """
    bins = distances if isinstance(distances, UlpBins) else ulp_bins(distances, dtype)
    if bins.n == 0:
        return empty_figure(title, "No elements to compare: the output is empty.")
    n, n_nan = bins.n, bins.nan
    labels, counts, colours, hovers = [], [], [], []
    for k, count in enumerate(bins.counts):
        if k == 0:
            label, span = "0", "0 ULP (equal values)"
        elif k == 1:
            label, span = "1", "1 ULP"
        else:
            lo, hi = 1 << (k - 1), (1 << k) - 1
            label = f"{_pow2(k - 1)}–{_pow2(k) if k >= 11 else f'{hi:,}'}"
            span = f"{lo:,} to {hi:,} ULP"
        labels.append(label)
        counts.append(int(count))
        colours.append(GREEN if k == 0 else VERMILLION)
        hovers.append(f"{span}<br>{fmt_count(int(count), n)} elements")
    if n_nan:
        labels.append("NaN vs number")
        counts.append(n_nan)
        colours.append(PURPLE)
        hovers.append(f"NaN on one side only<br>{fmt_count(n_nan, n)} elements")
    fig = go.Figure(go.Bar(
        x=labels, y=counts, marker_color=colours, hovertext=hovers,
        hovertemplate="%{hovertext}<extra></extra>", name="elements",
    ))
    changed = n - int(bins.counts[0])
    top = fmt_ulp(bins.top, dtype) if bins.top is not None else MISSING
    subtitle = f"{fmt_count(changed, n)} elements differ; max {top} ULP"
    if n_nan:
        subtitle += f"; {n_nan:,} NaN vs number"
    return _styled(fig, title, "ULP distance (power-of-two bins)", "elements (log scale)", subtitle,
                   xaxis={"type": "category"},
                   yaxis={"type": "log", "dtick": 1})  # a label per decade, no minor-tick clutter


# ---------------------------------------------------------------- scatter


def scatter_baseline_vs_candidate(
    baseline: np.ndarray | ScatterSample,
    candidate: np.ndarray | None = None,
    max_points: int = 5000,
    dtype: str | None = None,
    title: str = "Baseline vs candidate values",
) -> go.Figure:
    """Each element as a point (baseline value, candidate value) with the ``y = x`` line of no change.

    Changed and unchanged elements are separate traces (colour and legend
    words). Arrays above ``max_points`` elements (capped at ``POINT_CAP``) are
    subsampled deterministically: the largest differences, then an even
    stride. ``dtype`` says the arrays are stored raw (bfloat16 bits) and adds
    ULPs to the hover. ``baseline`` may also be a ``ScatterSample`` already taken.
    """
    if isinstance(baseline, ScatterSample):
        sample = baseline
    else:
        a, b = np.asarray(baseline), np.asarray(candidate)
        if a.shape != b.shape:
            return empty_figure(title, f"Shapes differ ({fmt_shape(a.shape)} vs {fmt_shape(b.shape)}): "
                                       "elements cannot be paired.")
        sample = scatter_sample(a, b, max_points, dtype)
    if sample.size == 0:
        return empty_figure(title, "No elements to compare: the output is empty.")
    if sample.finite == 0:
        return empty_figure(title, f"All {sample.size:,} elements are NaN or infinite on one side: nothing to plot.")
    return _scatter_figure(sample, dtype, title)


def _scatter_figure(sample: ScatterSample, dtype: str | None, title: str) -> go.Figure:
    shown = sample.index
    diff = np.abs(sample.y - sample.x)
    index_text = _index_text(shown, sample.shape)
    fig = go.Figure()
    for name, colour, size, mask in (
        ("unchanged", SKY, 5, diff == 0),
        ("changed", VERMILLION, 6, diff != 0),
    ):
        pick = np.flatnonzero(mask)
        if not pick.size:
            continue
        texts = [index_text[i] for i in pick]
        ulp_col = ([fmt_ulp(int(u), dtype) for u in sample.ulps[pick]] if sample.ulps is not None
                   else [MISSING] * pick.size)
        custom = np.column_stack([texts, [fmt_abs(float(v)) for v in diff[pick]], ulp_col])
        fig.add_trace(go.Scatter(
            x=sample.x[pick], y=sample.y[pick], mode="markers", name=f"{name} ({pick.size:,} shown)",
            marker={"color": colour, "size": size, "opacity": 0.75},
            customdata=custom,
            hovertemplate="element %{customdata[0]}<br>baseline %{x:.9g}<br>candidate %{y:.9g}"
                          "<br>abs error %{customdata[1]}<br>ULP distance %{customdata[2]}<extra></extra>",
        ))
    fig.add_trace(go.Scatter(
        x=[sample.lo, sample.hi], y=[sample.lo, sample.hi], mode="lines", name="y = x (no change)",
        line={"color": GREY, "dash": "dash", "width": 1}, hoverinfo="skip",
    ))
    sampled = f"{shown.size:,} shown" + (" (largest differences + even sample)" if shown.size < sample.finite
                                         else "")
    dropped = sample.size - sample.finite
    subtitle = f"{fmt_count(sample.changed, sample.finite)} changed; {sampled}" + (
        f"; {dropped:,} NaN/Inf left out" if dropped else "")
    return _styled(fig, title, "baseline value", "candidate value", subtitle, height=460,
                   yaxis={"scaleanchor": "x", "scaleratio": 1})


# ---------------------------------------------------------------- difference heatmap


@dataclass(frozen=True)
class Grid2D:
    """A 2-D view of an N-D array and what its rows and columns are."""

    values: np.ndarray
    rows: str
    columns: str
    block: tuple[int, int] = (1, 1)  # elements per drawn cell (rows, columns) after reduction


def as_2d(array: np.ndarray, time_axis: int | None = None) -> Grid2D | None:
    """A 2-D view: timesteps × the rest when there is a time axis, else leading dims flattened × last dim.

    Singleton dimensions are dropped first; None when fewer than two dimensions remain.
    """
    array = np.asarray(array)
    keep = [i for i, n in enumerate(array.shape) if n != 1]
    if len(keep) < 2:
        return None
    squeezed = array.reshape([array.shape[i] for i in keep])
    if time_axis is not None and time_axis in keep:
        t = keep.index(time_axis)
        rest = [f"dim {keep[i]}" for i in range(len(keep)) if i != t]
        moved = np.moveaxis(squeezed, t, 0)
        return Grid2D(moved.reshape(moved.shape[0], -1), f"timestep (dim {time_axis})",
                      " × ".join(rest) + (" (flattened)" if len(rest) > 1 else ""))
    lead = [f"dim {i}" for i in keep[:-1]]
    return Grid2D(squeezed.reshape(-1, squeezed.shape[-1]),
                  " × ".join(lead) + (" (flattened)" if len(lead) > 1 else ""), f"dim {keep[-1]}")


def reduce_blocks(values: np.ndarray, max_rows: int, max_cols: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Shrink a 2-D array to at most ``max_rows`` × ``max_cols``: each cell keeps its block's value of
    largest magnitude (sign kept), so a single outlier stays visible. NaN only where a block is all NaN."""
    rows, cols = values.shape
    br, bc = math.ceil(rows / max_rows), math.ceil(cols / max_cols)
    if br == 1 and bc == 1:
        return values, (1, 1)
    out_r, out_c = math.ceil(rows / br), math.ceil(cols / bc)
    padded = np.full((out_r * br, out_c * bc), np.nan)
    padded[:rows, :cols] = values
    blocks = padded.reshape(out_r, br, out_c, bc).transpose(0, 2, 1, 3).reshape(out_r, out_c, br * bc)
    magnitude = np.nan_to_num(np.abs(blocks), nan=-1.0)
    pick = magnitude.argmax(axis=-1)[..., None]
    return np.take_along_axis(blocks, pick, axis=-1)[..., 0], (br, bc)


def difference_heatmap(
    baseline: np.ndarray | HeatmapGrid,
    candidate: np.ndarray | None = None,
    dtype: str | None = None,
    time_axis: int | None = None,
    title: str = "Difference (candidate − baseline)",
    shape: tuple[int, ...] | None = None,
) -> go.Figure:
    """Signed difference per element on a diverging colour scale centred at 0.

    Outputs with more than two dimensions are viewed as timesteps × the rest
    (when ``time_axis`` is given) or leading dims flattened × the last dim; big
    grids are reduced to blocks keeping their largest difference. NaN/Inf
    mismatches are left blank (and counted in the subtitle). ``baseline`` may
    also be a ``HeatmapGrid`` already reduced (``shape``: the output's shape).
    """
    if isinstance(baseline, HeatmapGrid):
        grid: HeatmapGrid | None = baseline
        shape = shape or baseline.grid_shape
    else:
        a, b = np.asarray(baseline), np.asarray(candidate)
        if a.shape != b.shape:
            return empty_figure(title, f"Shapes differ ({fmt_shape(a.shape)} vs {fmt_shape(b.shape)}): "
                                       "no element-wise difference.")
        shape = a.shape
        grid = heatmap_grid(a, b, dtype, time_axis)
    if grid is None:
        return empty_figure(title, f"The output is {fmt_shape(shape)}: a heatmap needs two dimensions "
                                   "of more than one element; see the histogram and scatter.")
    z, block = grid.z, grid.block
    biggest = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 0.0
    fig = go.Figure(go.Heatmap(
        z=z, colorscale=DIVERGING, zmid=0.0,
        colorbar={"title": {"text": "candidate − baseline"}, "exponentformat": "e"},
        hovertemplate=("row %{y}, column %{x}<br>difference %{z:.3g}" +
                       (f"<br>(largest of a {block[0]}×{block[1]} block)" if block != (1, 1) else "") +
                       "<extra></extra>"),
        hoverongaps=True,
    ))
    parts = [f"{fmt_shape(shape)} shown as {grid.grid_shape[0]:,} × {grid.grid_shape[1]:,}"]
    if block != (1, 1):
        parts.append(f"each cell the largest |difference| of {block[0]}×{block[1]} elements")
    parts.append(f"max |difference| {fmt_abs(biggest)}" if biggest else "no differences")
    if grid.mismatches:
        parts.append(f"{grid.mismatches:,} NaN/Inf mismatches left blank")
    unit = "" if block == (1, 1) else " (blocks)"
    return _styled(fig, title, grid.columns + unit, grid.rows + unit, "; ".join(parts), height=440,
                   xaxis={"showgrid": False}, yaxis={"autorange": "reversed", "showgrid": False})


# ---------------------------------------------------------------- LSTM timesteps


def timestep_error(
    per_timestep_max_abs: Sequence[float | None],
    title: str = "Largest absolute error at each timestep",
    time_axis: int | None = None,
    group: int = 1,
) -> go.Figure:
    """Max absolute error at each timestep; log y when the errors span orders of magnitude.

    The first timestep with a non-zero error is marked: in an LSTM, drift that
    starts early and grows is accumulated through the recurrence. ``group``:
    timesteps per value (``Metrics.timestep_group``), each drawn at its first timestep.
    """
    values = [None if v is None or not math.isfinite(float(v)) else float(v) for v in per_timestep_max_abs]
    if not values:
        return empty_figure(title, "This case has no time axis, so there is no error per timestep.")
    if len(values) > POINT_CAP:  # fold consecutive values (their maximum) so at most POINT_CAP points are drawn
        fold = math.ceil(len(values) / POINT_CAP)
        values = [max((v for v in values[i : i + fold] if v is not None), default=None)
                  for i in range(0, len(values), fold)]
        group *= fold
    steps = list(range(0, len(values) * group, group))
    y = [np.nan if v is None else v for v in values]
    log = _spans_decades(values)
    zeros = sum(1 for v in values if v == 0)
    fig = go.Figure(go.Scatter(
        x=steps, y=y, mode="lines+markers", name="max |error|",
        line={"color": VERMILLION}, marker={"size": 6},
        hovertemplate="timestep %{x}<br>max abs error %{y:.3g}<extra></extra>",
    ))
    first = next((steps[i] for i, v in enumerate(values) if v), None)
    shapes, notes = [], []
    if first is not None:
        shapes.append({"type": "line", "x0": first, "x1": first, "y0": 0, "y1": 1, "xref": "x", "yref": "paper",
                       "line": {"color": GREY, "dash": "dot", "width": 1}})
        at = f"{first}" if group == 1 else f"{first}–{first + group - 1}"
        notes.append({"x": first, "y": 1.0, "xref": "x", "yref": "paper", "text": f"first difference at t={at}",
                      "showarrow": False, "xanchor": "left", "yanchor": "bottom", "xshift": 4})
    parts = [f"{len(values)} timesteps" if group == 1 else f"{len(values):,} groups of {group:,} timesteps"]
    if first is None:
        parts.append("identical at every timestep")
    else:
        parts.append(f"{len(values) - zeros} with a difference, max {fmt_abs(max(v for v in values if v))}")
    if log and zeros:
        parts.append(f"{zeros} error-free timesteps not drawn on the log axis")
    axis = f" (index along dim {time_axis})" if time_axis is not None else ""
    return _styled(fig, title, f"timestep{axis}", "max absolute error" + (" (log scale)" if log else ""),
                   "; ".join(parts), shapes=shapes, annotations=notes,
                   yaxis={"type": "log", "exponentformat": "e"} if log
                   else {"exponentformat": "e", "rangemode": "tozero"})


# ---------------------------------------------------------------- layers


LayerInput = tuple[str, float | None] | LayerDivergence


def layer_divergence(
    layers: Sequence[LayerInput],
    title: str = "Divergence by layer (forward order)",
    first_divergent: str | None = None,
) -> go.Figure:
    """Largest absolute error of each intermediate output, first divergent layer highlighted.

    ``layers`` are ``(name, max_abs or None)`` pairs or ``LayerDivergence``
    (whose notes then explain layers compared by digest only). None: the layer
    was not decoded or could not be compared.
    """
    if not layers:
        return empty_figure(title, "This case records no intermediate layers.")
    rows = []
    for item in layers:
        if isinstance(item, LayerDivergence):
            rows.append((item.name, item.max_abs, item.identical, item.note))
        else:
            name, value = item
            rows.append((name, value, value == 0, ""))
    if first_divergent is None:
        first_divergent = next((name for name, _, identical, _ in rows if not identical), None)
    values = [v for _, v, _, _ in rows]
    log = _spans_decades(values)
    positive = [v for v in values if v]
    floor = min(positive) / 10 if log and positive else 0.0
    names, heights, colours, texts, hovers = [], [], [], [], []
    for i, (name, value, identical, note) in enumerate(rows):
        label = plotly_text(name, 60)
        names.append(f"{i + 1}. {label}")
        if identical:
            state, colour = "identical", GREEN
        elif value is None:
            state, colour = plotly_text(note or "differs (not decoded)", 80), GREY
        else:
            state, colour = fmt_abs(value), ORANGE
        if name == first_divergent:
            colour = VERMILLION
            state += " ← first divergent"
        heights.append(value if value else floor)
        colours.append(colour)
        texts.append(state)
        hovers.append(f"{label}<br>max abs error {fmt_abs(value)}<br>{state}")
    fig = go.Figure(go.Bar(
        x=names, y=heights, marker_color=colours, text=texts, textposition="outside", cliponaxis=False,
        hovertext=hovers, hovertemplate="%{hovertext}<extra></extra>", name="max |error|",
    ))
    subtitle = f"first divergent layer: {first_divergent}" if first_divergent else "every layer identical"
    return _styled(fig, title, "layer (forward order)", "max absolute error" + (" (log scale)" if log else ""),
                   subtitle, xaxis={"type": "category"},
                   yaxis={"type": "log" if log else "linear", "exponentformat": "e"})


# ---------------------------------------------------------------- training cases, step by step

TRAINING_LOSS_CHART = "Training loss"
TRAINING_DELTA_CHART = "Training difference"


def training_loss_curves(training: TrainingComparison, title: str = "Loss at each training step") -> go.Figure:
    """Both runs' loss at each step: two lines that lie on each other until the drift shows."""
    if not training.baseline_loss and not training.candidate_loss:
        return empty_figure(title, "Neither run recorded a training step.")
    fig = go.Figure()
    for name, values, colour, dash in (("baseline", training.baseline_loss, BLUE, "solid"),
                                       ("candidate", training.candidate_loss, ORANGE, "dot")):
        steps = list(range(1, len(values) + 1))
        fig.add_trace(go.Scatter(
            x=steps, y=[v if math.isfinite(v) else None for v in values], mode="lines", name=name,
            line={"color": colour, "dash": dash, "width": 2},
            hovertext=[f"{name}, step {i}<br>loss {v:.9g}" for i, v in zip(steps, values)],
            hovertemplate="%{hovertext}<extra></extra>"))
    positive = [v for v in (*training.baseline_loss, *training.candidate_loss) if math.isfinite(v) and v > 0]
    log = len(positive) == len(training.baseline_loss) + len(training.candidate_loss) and _spans_decades(positive)
    return _styled(fig, title, "training step", "loss" + (" (log scale)" if log else ""), training.text,
                   yaxis={"type": "log" if log else "linear", "exponentformat": "e"})


def training_delta(training: TrainingComparison,
                   title: str = "How the difference grows: |Δ| at each training step (log scale)") -> go.Figure:
    """|Δloss| and |Δ parameter distance| per step on a log axis, the first divergent step marked.

    Steps where a difference is exactly zero have no point on a log axis: they are left out and said so.
    """
    if training.first_bitwise_step is None:
        return empty_figure(title, f"All {training.steps} compared steps are bitwise identical: nothing grows.")
    fig = go.Figure()
    zeros = []
    for name, values, colour, symbol in (("|Δloss|", training.loss_delta, VERMILLION, "circle"),
                                         ("|Δ parameter distance from start|", training.distance_delta, PURPLE,
                                          "diamond")):
        steps = [i + 1 for i, v in enumerate(values) if math.isfinite(v) and v > 0]
        shown = [values[i - 1] for i in steps]
        zeros.append(len(values) - len(steps))
        fig.add_trace(go.Scatter(
            x=steps, y=shown, mode="lines+markers", name=name, marker={"color": colour, "symbol": symbol, "size": 6},
            line={"color": colour, "width": 1.5},
            hovertext=[f"step {i}<br>{plotly_text(name, 60)} {fmt_abs(v)}" for i, v in zip(steps, shown)],
            hovertemplate="%{hovertext}<extra></extra>"))
    first = training.first_bitwise_step
    marks = [{"type": "line", "xref": "x", "yref": "paper", "x0": first, "x1": first, "y0": 0, "y1": 1,
              "line": {"color": GREY, "dash": "dash", "width": 1.5}}]
    notes = [{"text": f"first divergent step {first}", "xref": "x", "yref": "paper", "x": first, "y": 1.0,
              "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"size": 12}}]
    if training.first_beyond_step is not None:
        beyond = training.first_beyond_step
        marks.append({"type": "line", "xref": "x", "yref": "paper", "x0": beyond, "x1": beyond, "y0": 0, "y1": 1,
                      "line": {"color": VERMILLION, "dash": "dot", "width": 1.5}})
        notes.append({"text": f"beyond {plotly_text(training.tolerance, 60)} from step {beyond}", "xref": "x",
                      "yref": "paper", "x": beyond, "y": 0.92, "xanchor": "left", "showarrow": False,
                      "font": {"size": 12}})
    growth = training.loss_growth or training.distance_growth
    subtitle = "; ".join(part for part in (
        f"|Δloss| {training.loss_growth.text}" if training.loss_growth else "",
        f"|Δ parameter distance| {training.distance_growth.text}" if training.distance_growth else "",
        "too few nonzero differences for a growth rate" if growth is None else "",
        f"{zeros[0]} steps with |Δloss| = 0 not drawn" if zeros[0] else "") if part)
    return _styled(fig, title, "training step", "absolute difference (log scale)", subtitle,
                   xaxis={"range": [0.5, training.steps + 0.5]}, yaxis={"type": "log", "exponentformat": "e"},
                   shapes=marks, annotations=notes)


def training_figures(comparison: CaseComparison, name: str) -> list[tuple[str, go.Figure]]:
    training = comparison.training
    if training is None:
        return []
    figures = [(TRAINING_LOSS_CHART, training_loss_curves(training, title=f"{name}: loss at each training step"))]
    if training.first_bitwise_step is not None:
        figures.append((TRAINING_DELTA_CHART, training_delta(
            training, title=f"{name}: |Δ| at each training step (log scale)")))
    return figures


# ---------------------------------------------------------------- module calls of an own model


MODULE_CHART = "Divergence by module call"  # its title in ``case_figures``: pages draw it full width
LARGE_CHART = 5000  # points above which a chart draws with WebGL (Scattergl): SVG markers slow the browser down


def module_divergence(
    changes: Sequence[ModuleChange],
    first_divergent: ModuleChange | None = None,
    title: str = "Divergence by module call (execution order)",
) -> go.Figure:
    """Relative error of each module call of an own model, in execution order, on a log axis.

    x: the call's position in the baseline's execution order (calls only the candidate made come last);
    y: ``Change.rel_error``. Bitwise identical calls sit on a band below the smallest error (tick
    "0 (identical)"), calls without a finite figure (a shape or dtype change, a call on one side only,
    a change from all zeros) on a band above the largest (tick "no figure"). The first divergent call
    (default: the first that is not identical) gets a dashed vertical line and its label. One trace per
    kind of call and no per-point annotation, so a model of thousands of calls stays one light figure;
    each point's hover has the module, its type, the call number and the figures.
    """
    if not changes:
        return empty_figure(title, "This case records no module calls (captured with --layers none, or it "
                                   "failed before its forward finished).")
    if first_divergent is None:
        first_divergent = next((m for m in changes if not m.identical), None)
    kinds = [_module_kind(m) for m in changes]
    positive = [m.change.rel_error for m, kind in zip(changes, kinds) if kind == "changed"]
    lo = math.floor(math.log10(min(positive))) if positive else -8
    hi = max(math.ceil(math.log10(max(positive))), lo + 1) if positive else lo + 1
    floor, ceiling = 10.0 ** (lo - 1), 10.0 ** (hi + 1)
    heights = {"identical": floor, "zero": floor, "none": ceiling}
    scatter = go.Scattergl if len(changes) > LARGE_CHART else go.Scatter
    fig = go.Figure()
    y = np.array([heights.get(kind) or m.change.rel_error for m, kind in zip(changes, kinds)], dtype=np.float64)
    for kind, (name, colour, symbol, size) in _MODULE_KINDS.items():
        pick = np.array([i for i, k in enumerate(kinds) if k == kind], dtype=np.int64)
        if pick.size:
            fig.add_trace(scatter(
                x=pick + 1, y=y[pick], mode="markers", name=f"{name} ({pick.size:,})",
                marker={"color": colour, "symbol": symbol, "size": size, "line": {"width": 0}},
                customdata=_module_custom([changes[i] for i in pick]), hovertemplate=_MODULE_HOVER,
            ))
    shapes, notes = [], []
    if first_divergent is not None and first_divergent in changes:
        at = changes.index(first_divergent) + 1
        fig.add_trace(scatter(
            x=[at], y=[y[at - 1]], mode="markers",
            name="first divergent call", marker={"color": VERMILLION, "symbol": "circle-open", "size": 16,
                                                 "line": {"width": 2}},
            customdata=_module_custom([first_divergent]), hovertemplate=_MODULE_HOVER,
        ))
        shapes.append({"type": "line", "x0": at, "x1": at, "y0": 0, "y1": 1, "xref": "x", "yref": "paper",
                       "line": {"color": VERMILLION, "dash": "dash", "width": 1.5}})
        right = at > 0.7 * len(changes)  # a label near the right edge runs inwards
        notes.append({"x": at, "y": 1.0, "xref": "x", "yref": "paper", "showarrow": False,
                      "text": f"first divergent: {plotly_text(first_divergent.label, 90)}",
                      "xanchor": "right" if right else "left", "xshift": -4 if right else 4,
                      "yanchor": "bottom", "bgcolor": "rgba(128,128,128,0.12)"})
    step = 1 if hi - lo <= 10 else 2
    decades = list(range(lo, hi + 1, step))
    top = ceiling if "none" in kinds else 10.0 ** hi
    yaxis = {"type": "log", "tickmode": "array",
             "tickvals": [floor, *(10.0 ** d for d in decades), *([ceiling] if "none" in kinds else [])],
             "ticktext": ["0 (identical)", *(f"1e{d}" for d in decades), *(["no figure"] if "none" in kinds else [])],
             "range": [lo - 1.4, math.log10(top) + 0.4]}
    xaxis: dict[str, Any] = {"range": [0.5, len(changes) + 0.5], "zeroline": False}
    named = len(changes) <= 30  # few calls: each one named under its point (its tail: the distinctive part)
    if named:
        xaxis.update(tickmode="array", tickvals=list(range(1, len(changes) + 1)), tickangle=-40,
                     ticktext=[plotly_text(_tail(m.name or "(model)", 30), 32) for m in changes])
    differ = sum(1 for k in kinds if k != "identical")
    parts = [f"{len(changes):,} module calls, {differ:,} differ" if differ else "every call bitwise identical"]
    figures = [m.change for m, k in zip(changes, kinds) if k == "changed"]
    if figures:  # the first divergent call is named by its marker's label
        parts.append("y: relative L2 error (element by element)" if all(c.elementwise for c in figures)
                     else "y: relative change of the L2 norm (statistics)")
    return _styled(fig, title, "module call (execution order)", "relative error (log scale)", "; ".join(parts),
                   height=520 if named else 440, xaxis=xaxis, yaxis=yaxis, shapes=shapes, annotations=notes,
                   margin={"l": 90, "r": 30, "t": 104, "b": 190 if named else 100},
                   # beside the plot when names stand under it: below, their length would decide where it lands
                   legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01} if named
                   else {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0})


def _tail(text: str, limit: int) -> str:
    """The end of a long qualified name, which tells calls apart (``…layers.3.self_attn.out_proj``)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


# name in the legend, colour, marker symbol, size: never colour alone
_MODULE_KINDS = {
    "identical": ("bitwise identical", GREEN, "circle", 6),
    "zero": ("bits differ, error 0", SKY, "diamond-open", 8),
    "changed": ("differs", ORANGE, "circle", 7),
    "none": ("no figure (see hover)", PURPLE, "x", 9),  # a shape or dtype change, a call on one side only
}


def _module_kind(module: ModuleChange) -> str:
    change = module.change
    if change.identical:
        return "identical"
    value = change.rel_error
    if value is None or not math.isfinite(value):
        return "none"
    return "zero" if value <= 0 else "changed"


# name, type and call number, then the figures, from each point's customdata; its position is x
_MODULE_HOVER = ("<b>%{customdata[0]}</b><br>%{customdata[1]} · call %{customdata[2]} · #%{x} in execution order"
                 "<br>%{customdata[3]}<extra></extra>")


def _module_custom(modules: Sequence[ModuleChange]) -> np.ndarray:
    """Each call's hover fields (name, type, call, figures), escaped: one small row per point, as a string
    array (Plotly copies an object array element by element, a string array in one go)."""
    types: dict[str, str] = {}
    rows = [(plotly_text(m.name or "(model)", 120), types.get(m.type) or types.setdefault(m.type, plotly_text(m.type, 60)),
             str(m.call), _change_hover(m.change)) for m in modules]
    return np.array(rows, dtype=str).reshape(len(modules), 4)


def _change_hover(change: Change) -> str:
    if change.identical:
        return "bitwise identical"
    lines = [plotly_text(change.note, 120)] if change.note else []
    if change.elementwise:
        lines.append(f"rel L2 error {fmt_rel(change.rel_error)} · max {fmt_ulp(change.ulp_max)} ULP · "
                     f"max abs {fmt_abs(change.max_abs)} · max rel {fmt_rel(change.max_rel)}")
    elif change.l2_rel is not None or change.max_change is not None:
        lines.append(f"L2 norm {fmt_rel(change.l2_rel)} relative · min/max/mean moved {fmt_abs(change.min_change)}"
                     f" / {fmt_abs(change.max_change)} / {fmt_abs(change.mean_change)}")
    return "<br>".join(lines) or "digests differ (no figures)"


# ---------------------------------------------------------------- drift matrix


def drift_matrix(
    run_labels: Sequence[str],
    case_labels: Sequence[str],
    verdict_grid: Sequence[Sequence[Verdict | str | None]],
    hover_grid: Sequence[Sequence[str | None]] | None = None,
    *,
    run_ids: Sequence[str] | None = None,
    case_keys: Sequence[str] | None = None,
    title: str = "Drift against the baseline: runs × cases",
    magnitude_grid: Sequence[Sequence[float | None]] | None = None,
    row_groups: Sequence[str] | None = None,
    column_groups: Sequence[str] | None = None,
    case_notes: Sequence[str | None] | None = None,
) -> go.Figure:
    """Runs (rows) × cases (columns), each cell coloured by its verdict; the colour bar lists verdict words.

    ``magnitude_grid[r][c]`` (max ULP distance, None where there is no figure)
    shades the cells that have one on a log scale of ULPs, over the verdict
    colours, so "1 ULP" and "a million ULP" no longer look alike; ``row_groups``
    names each row's machine: rows of one machine are drawn together under its
    name with a rule between machines. ``column_groups`` names each column's
    group (the reference suite, the team's own models): adjacent columns of a
    group get one heading above them and a rule between groups; ``case_notes``
    adds a line per column to every hover of that column (None: nothing).

    ``verdict_grid[r][c]`` is the verdict of run r on case c (None: no result);
    ``hover_grid`` the figures shown on hover (plain text, newlines allowed).
    Trace 0 is the heatmap; trace 1 an invisible marker per cell that carries
    the hover and can be clicked or box-selected (``st.plotly_chart(...,
    on_select="rerun")`` returns its points). Both carry ``customdata`` =
    ``[run id, case key]`` per cell; ``selected_cells`` turns a selection back
    into those pairs. Axes are indices with the labels as ticks, so duplicate
    labels never merge rows.
    """
    n_runs, n_cases = len(run_labels), len(case_labels)
    if not n_runs or not n_cases:
        what = "runs" if not n_runs else "cases"
        return empty_figure(title, f"No {what} to show: store runs and choose a baseline to fill the matrix.")
    run_ids = list(run_ids) if run_ids is not None else [str(r) for r in run_labels]
    case_keys = list(case_keys) if case_keys is not None else [str(c) for c in case_labels]
    verdicts = [[as_verdict(v) for v in row] for row in verdict_grid]
    if len(verdicts) != n_runs or any(len(row) != n_cases for row in verdicts):
        raise ValueError(f"verdict_grid must be {n_runs} rows × {n_cases} columns")
    present = sorted({v for row in verdicts for v in row if v is not None}, key=lambda v: v.severity)
    slot = {v: i for i, v in enumerate(present)}
    z = np.array([[np.nan if v is None else slot[v] for v in row] for row in verdicts], dtype=float)
    run_text = [plotly_text(r, 60) for r in run_labels]
    case_text = [plotly_text(c, 60) for c in case_labels]
    notes = [f"<br><i>{_hover(n)}</i>" if n else "" for n in case_notes] if case_notes is not None else [""] * n_cases
    if len(notes) != n_cases or (column_groups is not None and len(column_groups) != n_cases):
        raise ValueError(f"case_notes and column_groups must have {n_cases} entries")
    heads = run_text if row_groups is None else [f"{plotly_text(g, 40)} · {t}" for g, t in zip(row_groups, run_text,
                                                                                              strict=True)]
    hover = np.empty((n_runs, n_cases), dtype=object)
    icons = np.empty((n_runs, n_cases), dtype=object)
    fills = np.empty((n_runs, n_cases), dtype=object)
    inks = np.empty((n_runs, n_cases), dtype=object)
    for r in range(n_runs):
        for c in range(n_cases):
            style = verdict_style(verdicts[r][c])
            figures = hover_grid[r][c] if hover_grid is not None else None
            hover[r, c] = (f"<b>{heads[r]}</b><br>{case_text[c]}{notes[c]}<br>{style.label}"
                           + (f"<br>{_hover(figures)}" if figures else ""))
            icons[r, c] = style.icon
            fills[r, c], inks[r, c] = style.colour, style.text_colour
    custom = np.empty((n_runs, n_cases, 2), dtype=object)
    custom[..., 0] = np.array(run_ids, dtype=object)[:, None]
    custom[..., 1] = np.array(case_keys, dtype=object)[None, :]
    colourscale = _discrete_scale([VERDICT_STYLES[v].colour for v in present]) if present else [[0, GREY], [1, GREY]]
    heat = go.Heatmap(
        z=z, x=list(range(n_cases)), y=list(range(n_runs)),
        colorscale=colourscale, zmin=-0.5, zmax=max(len(present), 1) - 0.5, xgap=1, ygap=1,
        customdata=custom, hoverinfo="skip", name="verdict",
        colorbar={
            "title": {"text": "verdict"},
            "tickmode": "array",
            "tickvals": list(range(len(present))),
            "ticktext": [VERDICT_STYLES[v].label for v in present],
            "lenmode": "pixels", "len": 26 * max(len(present), 1) + 20,
            "y": 1.0, "yanchor": "top",
        },
    )
    if n_runs * n_cases <= 1200:  # icons in cells: words and symbols, not colour alone
        heat.update(text=icons, texttemplate="%{text}", textfont={"size": 11})
    rows, cols = np.divmod(np.arange(n_runs * n_cases), n_cases)
    picker = go.Scatter(
        x=cols, y=rows, mode="markers", name="cells",
        marker={"symbol": "square-open", "size": 10, "color": GREY, "opacity": 0.0},
        selected={"marker": {"opacity": 1.0}}, unselected={"marker": {"opacity": 0.0}},
        customdata=custom.reshape(-1, 2), hovertext=hover.reshape(-1),
        hoverlabel={"bgcolor": fills.reshape(-1), "font": {"color": inks.reshape(-1)}},
        hovertemplate="%{hovertext}<extra></extra>", showlegend=False,
    )
    traces: list[Any] = [heat]
    if magnitude_grid is not None:
        traces.append(_magnitude_heat(magnitude_grid, n_runs, n_cases, custom,
                                      icons if n_runs * n_cases <= 1200 else None))
    fig = go.Figure([*traces, picker])
    row_px = min(24.0, max(6.0, 720 / n_runs))  # rows readable when few, the whole matrix on screen when many
    plot_px = max(min(1100, n_runs * row_px), 26 * max(len(present), 1) + 20 + (230 if magnitude_grid else 0))
    stride = max(1, math.ceil(n_runs * 14 / plot_px))  # a run label every 14 px at most
    ticks = list(range(0, n_runs, stride))
    tick_text = run_text[::stride]
    shapes: list[dict[str, Any]] = []
    if row_groups is not None:
        ticks, tick_text, shapes = _machine_rows(list(row_groups), run_text, stride, n_cases)
    headings: list[dict[str, Any]] = []
    if column_groups is not None:
        rules, headings = _case_groups(list(column_groups), n_runs)
        shapes += rules
    what = "max ULP shades the cells; " if magnitude_grid is not None else ""
    return _styled(
        fig, title, "case", "machine · run" if row_groups is not None else "run",
        f"{n_runs:,} runs × {n_cases} cases; {what}hover a cell for its figures, click or box-select cells to compare",
        height=int(plot_px + 230),
        xaxis={"tickmode": "array", "tickvals": list(range(n_cases)), "ticktext": case_text, "tickangle": -40,
               "showgrid": False, "zeroline": False, "range": [-0.5, n_cases - 0.5]},
        yaxis={"tickmode": "array", "tickvals": ticks, "ticktext": tick_text,
               "autorange": "reversed", "showgrid": False, "zeroline": False},
        meta={"run_ids": run_ids, "case_keys": case_keys}, dragmode="select", shapes=shapes,
        margin={"l": 160, "r": 30, "t": 104 if headings else 80, "b": 150}, annotations=headings,
    )


# Okabe-Ito green (identical) through yellow to vermillion (far): the shade says how far, the icon says what.
_MAGNITUDE_SCALE = [[0.0, GREEN], [0.3, "#F0E442"], [0.6, ORANGE], [1.0, VERMILLION]]


def _magnitude_heat(grid: Sequence[Sequence[float | None]], n_runs: int, n_cases: int, custom: np.ndarray,
                    icons: np.ndarray | None) -> go.Heatmap:
    """Cells with a figure, shaded by log10(1 + max ULP); cells without one stay in their verdict colour."""
    if len(grid) != n_runs or any(len(row) != n_cases for row in grid):
        raise ValueError(f"magnitude_grid must be {n_runs} rows × {n_cases} columns")
    z = np.array([[np.nan if v is None else math.log10(1.0 + max(float(v), 0.0)) for v in row] for row in grid],
                 dtype=float)
    top = max(1.0, math.ceil(float(np.nanmax(z))) if np.isfinite(z).any() else 1.0)
    decades = list(range(int(top) + 1))
    heat = go.Heatmap(
        z=z, x=list(range(n_cases)), y=list(range(n_runs)), zmin=0.0, zmax=top, colorscale=_MAGNITUDE_SCALE,
        xgap=1, ygap=1, customdata=custom, hoverinfo="skip", name="max ULP",
        colorbar={"title": {"text": "max ULP"}, "tickmode": "array",
                  "tickvals": [0.0, *(math.log10(1 + 10 ** d) for d in decades)],
                  "ticktext": ["0", *(_pow10(d) for d in decades)],
                  "lenmode": "pixels", "len": 200, "y": 0.0, "yanchor": "bottom"},  # below the verdict bar
    )
    if icons is not None:
        heat.update(text=icons, texttemplate="%{text}", textfont={"size": 11})
    return heat


def _pow10(d: int, written_below: int = 4) -> str:
    """A tick label for 10**d: written out (``1,000``) below ``written_below`` decades, else ``1e4``."""
    return f"{10 ** d:,}" if d < written_below else f"1e{d}"


def _machine_rows(groups: list[str], run_text: list[str], stride: int, n_cases: int
                  ) -> tuple[list[int], list[str], list[dict[str, Any]]]:
    """Tick labels that name each machine once, at its first row (in bold), and rules between machines."""
    starts = [r for r in range(len(groups)) if r == 0 or groups[r] != groups[r - 1]]
    ticks = sorted(set(starts) | set(range(0, len(groups), stride)))
    text = [f"<b>{plotly_text(groups[r], 40)}</b> · {run_text[r]}" if r in starts else run_text[r] for r in ticks]
    rules = [{"type": "line", "xref": "x", "yref": "y", "x0": -0.5, "x1": n_cases - 0.5, "y0": r - 0.5,
              "y1": r - 0.5, "line": {"color": ZERO_LINE, "width": 2}} for r in starts[1:]]
    return ticks, text, rules


def _case_groups(groups: list[str], n_runs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rules between column groups and a heading over each run of a group's columns (above the plot)."""
    starts = [c for c in range(len(groups)) if c == 0 or groups[c] != groups[c - 1]]
    ends = [*starts[1:], len(groups)]
    rules = [{"type": "line", "xref": "x", "yref": "y", "x0": c - 0.5, "x1": c - 0.5, "y0": -0.5,
              "y1": n_runs - 0.5, "line": {"color": ZERO_LINE, "width": 3}} for c in starts[1:]]
    headings = [{"text": f"<b>{plotly_text(groups[a], 60)}</b>", "xref": "x", "yref": "paper",
                 "x": (a + b - 1) / 2, "y": 1.0, "yanchor": "bottom", "showarrow": False,
                 "font": {"size": 12}} for a, b in zip(starts, ends, strict=True)]
    return rules, headings


def _discrete_scale(colours: Sequence[str]) -> list[list[Any]]:
    """A step colour scale: integer z = i is drawn in ``colours[i]`` exactly."""
    n = len(colours)
    scale: list[list[Any]] = []
    for i, colour in enumerate(colours):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


def selected_cells(fig: go.Figure | Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(run id, case key) of each selected or clicked drift-matrix point, in order, without repeats.

    ``points`` are Plotly event points (Streamlit's ``event.selection.points``):
    their ``customdata`` when present, else their x/y indices looked up in the
    figure's ``layout.meta``.
    """
    layout = fig.layout if isinstance(fig, go.Figure) else fig.get("layout", {})
    meta = (layout.meta if isinstance(fig, go.Figure) else layout.get("meta")) or {}
    run_ids, case_keys = meta.get("run_ids", []), meta.get("case_keys", [])
    out: list[tuple[str, str]] = []
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)) and len(custom) >= 2:
            pair = (str(custom[0]), str(custom[1]))
        else:
            try:
                pair = (run_ids[int(point["y"])], case_keys[int(point["x"])])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
        if pair not in out:
            out.append(pair)
    return out


# ---------------------------------------------------------------- machine timeline


TimelineMetric = Literal["drifted", "failing", "ulp_max"]
_METRIC_TITLES = {
    "drifted": "cases differing from the golden",
    "failing": "cases beyond tolerance (or missing / failed)",
    "ulp_max": "worst ULP distance to the golden",
}


ZERO_ULP_AT = 0.5  # where a log ULP axis draws 0 ULP (identical): a band below 1 ULP, labelled "0 (identical)"
MERGE_WITHIN = 0.08  # environment changes closer than this share of the time span share one label


def machine_timeline(
    points: Sequence[TimelinePoint],
    events: Sequence[TimelineEvent] = (),
    y: TimelineMetric = "drifted",
    title: str = "Machine history against the golden",
) -> go.Figure:
    """A machine's runs over time (y: drifted cases, failing cases or worst ULP) with environment
    changes as vertical markers, one per event (both from ``core.audit``).

    Every run is drawn: on a log ULP axis, 0 ULP (identical, the good news) sits on its own band below
    1 ULP. The variants of one settings sweep stand at one time (``TimelinePoint.x_at``). Labels of close
    changes are merged into one ("3 environment changes") and staggered; the full text is in the hover."""
    if not points:
        return empty_figure(title, "No runs of this machine yet: capture and push one to start its history.")
    ordered = sorted(points, key=lambda p: (parse_time(p.captured_at) or parse_time("1970-01-01"), p.run_id))
    xs = [_x_time(p.x_at) for p in ordered]
    values: list[float | None] = []
    for p in ordered:
        if p.is_golden:
            values.append(0)  # the golden against itself
        elif p.worst is None:
            values.append(None)  # not compared: drawn as a gap
        else:
            values.append(p.ulp_max if y == "ulp_max" else getattr(p, y))
    hovers, colours, symbols = [], [], []
    for p in ordered:
        style = verdict_style(p.worst if not p.is_golden else Verdict.IDENTICAL)
        head = f"<b>{plotly_text(p.label or p.run_id, 60)}</b>" + (" (golden)" if p.is_golden else "")
        lines = [head, plotly_text(p.run_id, 60), fmt_time(p.captured_at)]
        if p.variant != "default":
            lines.append(f"settings variant {plotly_text(p.variant, 40)}")
        if p.is_golden:
            lines.append("the golden baseline itself")
        elif p.worst is None:
            lines.append("not compared with the golden")
        else:
            lines += [f"worst: {style.label}", f"{fmt_count(p.drifted, p.compared)} cases differ",
                      f"{p.failing} beyond tolerance / missing / failed", f"max ULP {fmt_ulp(p.ulp_max)}"]
        hovers.append("<br>".join(lines))
        colours.append(style.colour if (p.worst is not None or p.is_golden) else GREY)
        symbols.append("star" if p.is_golden else ("diamond" if p.variant != "default" else "circle"))
    finite = [v for v in values if v is not None]
    log = y == "ulp_max" and (_spans_decades([float(v) for v in finite]) or (0 in finite and max(finite, default=0) > 1))
    drawn = [np.nan if v is None else (ZERO_ULP_AT if log and v <= 0 else v) for v in values]
    fig = go.Figure(go.Scatter(
        x=xs, y=drawn, mode="lines+markers", name="runs",
        line={"color": GREY, "width": 1}, connectgaps=True,
        marker={"color": colours, "size": 11, "symbol": symbols, "line": {"width": 1, "color": GREY}},
        hovertext=hovers, hovertemplate="%{hovertext}<extra></extra>",
        customdata=[p.run_id for p in ordered],
    ))
    top = max(finite) if finite else 1
    marker_y = (top if top > 0 else 1) * (1.6 if y == "ulp_max" else 1.08) if finite else 1
    shapes, notes = _event_marks(events, ordered)
    if events:
        fig.add_trace(go.Scatter(
            x=[_x_time(e.at) for e in events], y=[marker_y] * len(events), mode="markers",
            name="environment change", marker={"symbol": "triangle-down", "size": 13, "color": ORANGE},
            hovertext=[_event_hover(e) for e in events], hovertemplate="%{hovertext}<extra></extra>",
            customdata=[[e.before_run_id, e.after_run_id] for e in events],
        ))
    subtitle = f"{len(ordered)} runs, {len(events)} environment change{'s' if len(events) != 1 else ''}"
    yaxis: dict[str, Any] = {"rangemode": "tozero"}
    if log:
        decades = range(0, max(1, math.ceil(math.log10(max(top, 1)))) + 1)
        yaxis = {"type": "log", "tickmode": "array", "tickvals": [ZERO_ULP_AT, *(10 ** d for d in decades)],
                 "ticktext": ["0 (identical)", *(_pow10(d, 5) for d in decades)],
                 "range": [math.log10(ZERO_ULP_AT) - 0.15, math.log10(marker_y) + 0.1]}
    return _styled(fig, title, "captured (UTC)", _METRIC_TITLES[y] + (" (log scale)" if log else ""), subtitle,
                   height=440, shapes=shapes, annotations=notes,
                   margin={"l": 90, "r": 30, "t": 80 + 22 * min(len(notes), 3), "b": 100}, yaxis=yaxis)


def _event_marks(events: Sequence[TimelineEvent], ordered: Sequence[TimelinePoint]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A dashed line per event; one label per cluster of close events (merged, on staggered rows), short
    text only: the marker's hover has every change."""
    times = [t for t in (parse_time(p.x_at) for p in ordered) if t is not None]
    span = (times[-1] - times[0]) if len(times) > 1 else None
    late = times[0] + (times[-1] - times[0]) * 0.75 if times else None
    shapes = [{"type": "line", "x0": _x_time(e.at), "x1": _x_time(e.at), "y0": 0, "y1": 1, "xref": "x",
               "yref": "paper", "line": {"color": ORANGE, "width": 2, "dash": "dash"}} for e in events]
    clusters: list[list[TimelineEvent]] = []
    for event in sorted(events, key=lambda e: _x_time(e.at)):
        when, last = parse_time(event.at), clusters[-1][-1] if clusters else None
        then = parse_time(last.at) if last is not None else None
        if (last is not None and when is not None and then is not None and span
                and (when - then) <= span * MERGE_WITHIN):
            clusters[-1].append(event)
        else:
            clusters.append([event])
    notes = []
    for i, cluster in enumerate(clusters):
        first = cluster[0]
        x, when = _x_time(first.at), parse_time(first.at)
        right = late is not None and when is not None and when > late  # a label near the right edge runs inwards
        text = first.label if len(cluster) == 1 else f"{len(cluster)} environment changes"
        notes.append({"x": x, "y": 1.0 + 0.07 * (i % 3), "xref": "x", "yref": "paper",
                      "text": plotly_text(text, 48), "showarrow": False,
                      "hovertext": "<br>".join(_event_hover(e) for e in cluster[:4]),
                      "xanchor": "right" if right else "left", "xshift": -3 if right else 3,
                      "yanchor": "bottom", "bgcolor": "rgba(128,128,128,0.12)"})
    return shapes, notes


def _x_time(iso: str) -> str:
    """A timestamp Plotly reads as a date (UTC, no offset: Plotly ignores offsets)."""
    when = parse_time(iso)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if when else iso


def _event_hover(event: TimelineEvent) -> str:
    lines = ["<b>environment change</b>", *(plotly_text(c, 100) for c in event.changes[:12])]
    if len(event.changes) > 12:
        lines.append(f"… {len(event.changes) - 12} more")
    lines.append(f"between {plotly_text(event.before_run_id, 40)} and {plotly_text(event.after_run_id, 40)}")
    return "<br>".join(lines)


# ---------------------------------------------------------------- verdict counts


def verdict_counts_bar(counts: Mapping[Verdict | str, int], title: str = "Cases by verdict") -> go.Figure:
    """One horizontal bar per verdict present, most severe on top, labelled with icon and word."""
    rows = sorted(((as_verdict(v), int(n)) for v, n in counts.items() if n), key=lambda r: r[0].severity)
    if not rows:
        return empty_figure(title, "No cases were compared.")
    total = sum(n for _, n in rows)
    fig = go.Figure(go.Bar(
        x=[n for _, n in rows], y=[VERDICT_STYLES[v].label for v, _ in rows], orientation="h",
        marker_color=[VERDICT_STYLES[v].colour for v, _ in rows],
        text=[f"{n:,}" for _, n in rows], textposition="outside", cliponaxis=False,
        hovertext=[f"{VERDICT_STYLES[v].label}: {fmt_count(n, total)} cases<br>{VERDICT_STYLES[v].meaning}"
                   for v, n in rows],
        hovertemplate="%{hovertext}<extra></extra>", name="cases",
    ))
    return _styled(fig, title, "cases", None, height=max(220, 140 + 34 * len(rows)), yaxis={"type": "category"})


# ---------------------------------------------------------------- one case


@dataclass(frozen=True)
class CaseCharts:
    """The charts that apply to one case, or the reason there are none.

    Iterating it yields the ``(title, figure)`` pairs, so it reads like the
    plain list; ``explanation`` is a short sentence for the page to show above
    them (or instead of them), always set.
    """

    explanation: str
    figures: tuple[tuple[str, go.Figure], ...] = ()
    skipped: str = ""  # the one line saying which charts the page's decode budget left out, and why

    def __iter__(self) -> Iterator[tuple[str, go.Figure]]:
        return iter(self.figures)

    def __len__(self) -> int:
        return len(self.figures)

    def __getitem__(self, i: int) -> tuple[str, go.Figure]:
        return self.figures[i]


def case_figures(
    comparison: CaseComparison,
    baseline_arrays: ArraySource | None,
    candidate_arrays: ArraySource | None,
    baseline_case: CaseResult | None,
    candidate_case: CaseResult | None,
    max_points: int = 5000,
    *,
    budget: DecodeBudget | None = None,
    summarise: Summarise | None = None,
) -> CaseCharts:
    """The charts for one compared case: ULP histogram, scatter, heatmap (2-D or more), error by
    timestep (time axis), divergence by layer (layers) — or a short explanation instead when the
    case is identical, missing on one side, fed other inputs, or could not be compared. A case of the
    team's own models whose module calls differ gets the divergence by module call first (``MODULE_CHART``),
    drawn from the comparison's statistics alone, with or without arrays.

    The element charts decode both outputs, charged to ``budget`` (a page's
    ``DecodeBudget``; a fresh one when None): past it they are skipped and the
    explanation says so in one sentence (also in ``CaseCharts.skipped``).
    ``summarise`` turns the request into the charts' data (default: decode and
    reduce now); the dashboard puts a cache keyed by array digest there.
    """
    verdict = comparison.verdict
    name = case_key_text(comparison.key)
    reason = _no_chart_reason(comparison, baseline_case, candidate_case)
    layers_fig = []
    if comparison.layers and any(not layer.identical for layer in comparison.layers):
        layers_fig = [("Divergence by layer", layer_divergence(
            comparison.layers, title=f"{name}: divergence by layer", first_divergent=comparison.first_divergent_layer))]
    modules_fig = training_figures(comparison, name)  # a training case: its steps first
    if _modules_charted(comparison):  # an own model: where in its forward the numbers start to differ
        modules_fig += [(MODULE_CHART, module_divergence(
            comparison.modules, comparison.first_divergent_module, title=f"{name}: divergence by module call"))]
    if reason is not None:
        return CaseCharts(reason, tuple(modules_fig + layers_fig))
    assert baseline_case is not None and candidate_case is not None
    assert baseline_case.output is not None and candidate_case.output is not None
    if baseline_arrays is None or candidate_arrays is None:
        return CaseCharts(f"{verdict_style(verdict).label}: {comparison.detail}. The arrays are not available "
                          "here, so only the figures are shown.", tuple(modules_fig + layers_fig))
    metrics = comparison.metrics
    request = ElementRequest(baseline_arrays, baseline_case.output, candidate_arrays, candidate_case.output,
                             metrics.time_axis if metrics else None, max_points, budget or DecodeBudget())
    explanation, skipped = f"{verdict_style(verdict).label}: {comparison.detail}", ""
    figures: list[tuple[str, go.Figure]] = list(modules_fig)
    try:
        summary = (summarise or ElementRequest.compute)(request)
    except DecodeBudgetExceeded as exc:
        skipped = exc.line
        explanation += f". {skipped}"
    else:
        figures += _element_figures(summary, name)
    if metrics is not None and metrics.timestep_max_abs is not None:
        figures.append(("Error by timestep", timestep_error(
            metrics.timestep_max_abs, title=f"{name}: largest absolute error at each timestep",
            time_axis=metrics.time_axis, group=metrics.timestep_group)))
    figures += layers_fig
    return CaseCharts(explanation, tuple(figures), skipped)


def _element_figures(summary: ElementCharts, name: str) -> list[tuple[str, go.Figure]]:
    dtype = summary.dtype
    figures = [
        ("ULP distance histogram", ulp_histogram(summary.ulp, title=f"{name}: ULP distance per element", dtype=dtype)),
        ("Baseline vs candidate", scatter_baseline_vs_candidate(summary.scatter, dtype=dtype,
                                                                title=f"{name}: baseline vs candidate")),
    ]
    if summary.heatmap is not None:
        figures.append(("Difference heatmap", difference_heatmap(
            summary.heatmap, title=f"{name}: difference (candidate − baseline)", shape=summary.shape)))
    return figures


def _modules_charted(comparison: CaseComparison) -> bool:
    """Whether a case's module calls are worth a chart: some differ, and the two sides ran the same
    model on the same weights and inputs (otherwise every call differs for a reason that is not compute)."""
    return (comparison.verdict is not Verdict.INPUTS_DIFFER
            and any(not m.identical for m in comparison.modules))


def _no_chart_reason(
    comparison: CaseComparison, baseline_case: CaseResult | None, candidate_case: CaseResult | None
) -> str | None:
    """Why a case gets no element charts, or None when it does."""
    v = comparison.verdict
    label = verdict_style(v).label
    if v is Verdict.MISSING_IN_CANDIDATE:
        return (f"{label}: only the baseline ran this case; the candidate's suite does not include it, or it was "
                "skipped there (another device or dtype). Nothing to compare.")
    if v is Verdict.MISSING_IN_BASELINE:
        return (f"{label}: only the candidate ran this case; it is new since the baseline, or the baseline "
                "machine lacks its device or dtype. Nothing to compare.")
    if v is Verdict.INPUTS_DIFFER:
        return (f"{label}: {comparison.detail}. The two machines fed the model different reference data, so a "
                "difference in outputs says nothing about their compute; check the numpy and suite versions.")
    if v is Verdict.IDENTICAL:
        n = comparison.metrics.n if comparison.metrics else None
        count = f" all {n:,} values" if n is not None else ""
        extra = ""
        if comparison.layers and any(not layer.identical for layer in comparison.layers):
            extra = " Some intermediate layers differ by digest; see the layer chart."
        elif _modules_charted(comparison):
            extra = " Some module calls differ inside the model; see the module chart."
        return f"{label}:{count} are the same bits on both machines; there is no difference to chart.{extra}"
    if v in (Verdict.SHAPE_MISMATCH, Verdict.DTYPE_MISMATCH, Verdict.ERROR):
        return f"{label}: {comparison.detail}. The outputs cannot be compared element by element."
    if (baseline_case is None or candidate_case is None
            or baseline_case.output is None or candidate_case.output is None):
        return f"{label}: {comparison.detail}. The case's outputs are not available."
    return None
