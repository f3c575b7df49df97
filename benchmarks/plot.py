"""``--plot``: a PNG bar chart of the ratios, one panel per variant.

matplotlib is imported only here, and only when ``--plot`` is given, so the benchmarks
run without it; ``require_matplotlib`` fails fast, before any measuring starts.
"""

from __future__ import annotations

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
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    ax.invert_yaxis()
    ax.set_xscale("log")
    lines = [t.target for t in targets if t.target.reference == ref and t.target.kind == "at_most"]
    span = [*ratios, *(t.threshold for t in lines), 1.0]
    ax.set_xlim(min(span) / 1.3, max(span) * 2.0)
    wide = max(span) / min(span) > 300
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    for target in lines:
        ax.axvline(target.threshold, color="tab:red", linestyle="--", linewidth=0.8)
        ax.text(
            target.threshold,
            len(names) - 0.55,
            f" target {label(target.impl)}",
            color="tab:red",
            fontsize=6,
            va="bottom",
        )
    for y, ratio in zip(ypos, ratios, strict=True):
        ax.text(ratio, y, f" {ratio:.2f}x", va="center", fontsize=7)
    ax.set_title(f"{vr.scenario} {vr.title}", fontsize=8)
    ax.set_xlabel(f"ratio to {label(ref)} (median, log scale; lower is better)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
