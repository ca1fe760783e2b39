"""The web attention explorer (`transformer serve`): a FastAPI app over loaded runs.

- `service`: `Explorer` (the runs, the limits, translate / generate / attention) and `ApiError`.
- `app`: `create_app(explorer)`, the page, the JSON API and admission control (503 when full).
- `static/`: the page's HTML, script and style, served by the app itself (no CDN).
"""

from transformer.serve.app import create_app
from transformer.serve.service import ApiError, Explorer, Limits

__all__ = ["ApiError", "Explorer", "Limits", "create_app"]
