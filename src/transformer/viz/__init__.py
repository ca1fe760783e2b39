"""Figures and text views of the model: the positional-encoding heat map (lecture Figure 2)
and the module tree with parameter counts. matplotlib is imported only where a figure is drawn.

- `attention`: a sentence's attention weights (from `need_weights=True`) with token labels;
  `attention_plot`: per-head heatmap grids of them; `curves`: the lr schedule and training
  curves from log.jsonl; `loaded`: a run loaded for inference (model, tokenizer, translator).
"""

from transformer.viz.model_tree import model_tree
from transformer.viz.positional import plot_positional_encoding

__all__ = ["model_tree", "plot_positional_encoding"]
