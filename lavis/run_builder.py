"""What the command-line entry points share: building a run from its config, and which errors
are the user's to fix (printed as one `error: ...` line, never a traceback).

Used by `train.py` and `python -m lavis.tools.cache_features`, which must build the very same
task, datasets and model from a config (the same seed, so parts built from scratch get the
same initial weights in both).
"""


def user_errors():
    """The exception types that mean bad input (config, files, data), not a bug."""
    from lavis.common.checkpoint import CheckpointError
    from lavis.common.config import ConfigError
    from lavis.common.registry import UnknownNameError
    from lavis.datasets.datasets.instruction_dataset import AnnotationError
    from lavis.datasets.feature_cache import FeatureCacheError
    from lavis.models.minigpt4qwen.weights import MissingWeightsError

    return (ConfigError, UnknownNameError, MissingWeightsError, CheckpointError, AnnotationError, FeatureCacheError)


def build_run(cfg):
    """Config -> task -> datasets + model, as LAVIS wires them; returns (task, datasets, model).
    `cfg` is a `lavis.common.config.Config` (built after `import lavis` registered everything)."""
    from lavis.runners.runner_base import set_seed
    from lavis.tasks import setup_task

    set_seed(cfg.run_cfg.seed)  # the same initial weights in every run, tool and rank
    task = setup_task(cfg)
    task.check_files(cfg)
    datasets = task.build_datasets(cfg)
    model = task.build_model(cfg)
    return task, datasets, model
