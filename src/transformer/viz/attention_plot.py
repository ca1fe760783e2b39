"""A grid of attention heatmaps: one panel per (layer, head), layers down, heads across.

Each panel is the (Q, K) matrix of one head (or the mean over the chosen heads), queries as
rows and keys as columns, with the tokens on both axes, drawn with matplotlib's object API
(`matplotlib.figure.Figure`, no pyplot state), so it is safe in a server thread too. The
array behind each panel's image is exactly the attention the model returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from transformer.viz.attention import AttentionView, select

TITLES = {
    "encoder": "encoder self-attention",
    "decoder": "decoder self-attention (masked)",
    "cross": "encoder-decoder attention",
}


def attention_figure(
    view: AttentionView,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    average_heads: bool = False,
) -> Figure:
    """The figure of `view` for the chosen layers and heads (all when None); with
    `average_heads`, one panel per layer: the mean over the chosen heads."""
    panels = select(view, layers, heads, average_heads)
    n_layers = len({layer for layer, _, _ in panels})
    cols = len(panels) // n_layers
    q, k = len(view.queries), len(view.keys)
    cell = 0.28 if max(q, k) > 12 else 0.38  # inches per token
    width = max(2.6, k * cell + 1.2) * cols + 0.8
    height = max(2.4, q * cell + 1.2) * n_layers + 0.6
    fig = Figure(figsize=(min(width, 60), min(height, 60)), layout="constrained")
    axes = fig.subplots(n_layers, cols, squeeze=False)
    fontsize = 8 if max(q, k) <= 20 else 6
    top = max(float(w.max()) for _, _, w in panels) or 1.0  # one colour scale for all panels
    image = None
    for ax, (layer, head, weights) in zip(axes.flat, panels, strict=True):
        image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
        ax.set_xticks(range(k), view.keys, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(q), view.queries, fontsize=fontsize)
        which = "mean of heads" if head is None else f"head {head}"
        ax.set_title(f"layer {layer}, {which}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=min(0.9, 2.0 / n_layers), label="attention weight")
    fig.suptitle(TITLES.get(view.kind, view.kind) + " (rows: queries, columns: keys)")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as PNG or SVG (from the suffix); creates the parent directory."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"the figure file must end in .png or .svg, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
