"""MiniGPT4Qwen: a LAVIS-style framework (models, datasets, processors, tasks, runners by name).

Importing `lavis` registers every component and the library/cache paths.
"""

import os

from omegaconf import OmegaConf

from lavis.common.registry import registry

_library_root = os.path.dirname(os.path.abspath(__file__))
_repo_root = os.path.dirname(_library_root)
_default_cfg = OmegaConf.load(os.path.join(_library_root, "configs", "default.yaml"))

registry.register_path("library_root", _library_root)
registry.register_path("repo_root", _repo_root)
registry.register_path(
    "cache_root",
    os.environ.get("LAVIS_CACHE_ROOT") or os.path.join(_repo_root, _default_cfg.env.cache_root),
)

# Importing the subpackages registers their components (after the paths above, which they use).
from lavis import datasets, models, processors, runners, tasks  # noqa: E402,F401
from lavis.common import optims  # noqa: E402,F401  (lr schedulers)
from lavis.models import load_model, load_model_and_preprocess, load_preprocess  # noqa: E402,F401
