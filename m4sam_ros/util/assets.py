"""Where the package's bundled files are (no torch import: the node's --help and the bag tool's
argument parsing read these paths before any model is built)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
#: the bundled demo model (m4sam_ros/assets/MODEL_CARD.md): default of the node, m4sam-bag, m4sam-heldout
DEMO_MODEL = ASSETS_DIR / "demo_model.pt"
