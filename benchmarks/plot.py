"""``--plot``: a PNG bar chart of the ratios, one panel per variant.

matplotlib is imported only here, and only when ``--plot`` is given, so the benchmarks
run without it; ``require_matplotlib`` fails fast, before any measuring starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .results import VariantResult, label
from .targets import TargetResult

INSTALL_HINT = (
    "--plot needs matplotlib: pip install 'sessionkit[bench]' (or pip install matplotlib)"
)


def require_matplotlib() -> str | None:
    """None when matplotlib can be imported, else the message to show."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def write_png(
    path: str, variants: Sequence[VariantResult], targets: Sequence[TargetResult], title: str
) -> None:
    import matplotlib.pyplot as plt

    fig = figure(variants, targets, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure(variants: Sequence[VariantResult], targets: Sequence[TargetResult], title: str) -> Any:
    """The chart as a matplotlib Figure (``write_png`` saves it; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [v for v in variants if any(r.ok for r in v.impls)]
    cols = 3
    nrows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 2.6 * nrows), squeeze=False)
    flat: list[Any] = [ax for row in axes for ax in row]
    for ax, vr in zip(flat, shown, strict=False):
        _panel(ax, vr, [t for t in targets if t.variant == vr.key])
    for ax in flat[len(shown) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def target_lines(vr: VariantResult, targets: Sequence[TargetResult]) -> list[tuple[float, str]]:
    """(position, label) of each target on ``vr``'s panel, whose axis is the ratio to
    ``vr.ratio_to[0]``.

    An ``at_most`` target against that reference sits at its threshold. ``>= N x faster
    than R`` sits at R's ratio to the panel's reference divided by N: a bar left of the
    line meets it. Other targets have no place on the axis and are left out.
    """
    ref = vr.ratio_to[0]
    out = []
    for t in (r.target for r in targets):
        who = f"target {label(t.impl)}"
        if t.kind == "at_most" and t.reference == ref:
            out.append((t.threshold, who))
        elif t.kind == "faster_by":
            theirs = vr.ratio(t.reference, ref)
            if theirs is not None:
                out.append(
                    (
                        theirs / t.threshold,
                        f"{who} ({t.threshold:g}x faster than {label(t.reference)})",
                    )
                )
    return out


def _panel(ax: Any, vr: VariantResult, targets: Sequence[TargetResult]) -> None:
    ref = vr.ratio_to[0]
    names, ratios, colors = [], [], []
    for r in vr.impls:
        ratio = vr.ratio(r.impl, ref)
        if ratio is None:
            continue
        names.append(label(r.impl))
        ratios.append(ratio)
        colors.append("tab:blue" if r.impl.startswith("sessionkit") else "tab:gray")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ypos = list(range(len(names)))
    ax.barh(ypos, ratios, color=colors)
    ax.set_yticks(ypos, names, fontsize=8)
    ax.set_xscale("log")
    lines = target_lines(vr, targets)
    span = [*ratios, *(x for x, _ in lines), 1.0]
    ax.set_xlim(min(span) / 1.3, max(span) * 2.0)
    wide = max(span) / min(span) > 300
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    # The labels go in a band below the bars, one row each, so they hide no bar and
    # targets close together stay legible; one in the right half of the panel reads
    # leftwards, to stay inside it.
    row = 0.45
    bottom = len(names) - 0.5 + row * len(lines)
    ax.set_ylim(bottom, -0.5)
    lo, hi = ax.get_xlim()
    for i, (x, text) in enumerate(lines):
        ax.axvline(x, color="tab:red", linestyle="--", linewidth=0.8)
        right_half = math.log(x / lo) > 0.55 * math.log(hi / lo)
        ax.text(
            x,
            bottom - row * i - 0.05,
            f"{text} " if right_half else f" {text}",
            color="tab:red",
            fontsize=6,
            ha="right" if right_half else "left",
            va="bottom",
        )
    for y, ratio in zip(ypos, ratios, strict=True):
        ax.text(ratio, y, f" {ratio:.2f}x", va="center", fontsize=7)
    ax.set_title(f"{vr.scenario} {vr.title}", fontsize=8)
    ax.set_xlabel(f"ratio to {label(ref)} (median, log scale; lower is better)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
