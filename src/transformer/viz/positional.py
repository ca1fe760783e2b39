"""The lecture's Figure 2: the sinusoidal positional encoding as a heat map (rows = positions,
columns = dimensions), drawn with matplotlib's non-interactive Agg backend."""

from __future__ import annotations

from pathlib import Path

from transformer.layers.embedding import sinusoidal_encoding


def plot_positional_encoding(
    path: str | Path, d_model: int = 128, n_positions: int = 50, dpi: int = 120
) -> Path:
    """Write a PNG of the (n_positions, d_model) sinusoid p_t[i] (Section 3.5) to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pe = sinusoidal_encoding(n_positions, d_model).numpy()  # (T, D)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    image = ax.pcolormesh(pe, cmap="RdBu", vmin=-1.0, vmax=1.0)
    ax.set_xlabel("dimension i  (even: sin(ω_k t), odd: cos(ω_k t), ω_k = 1/10000^(2k/d))")
    ax.set_ylabel("position t")
    ax.set_xlim(0, d_model)
    ax.set_ylim(n_positions, 0)  # position 0 on top, as in the lecture's figure
    ax.set_title(f"The {d_model}-dimensional positional encoding for {n_positions} positions")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
