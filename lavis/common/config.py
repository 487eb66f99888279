"""Run configuration: YAML file + model/dataset defaults + command-line options -> one checked config.

Flow (as in LAVIS): the run YAML names a model (`arch`, `model_type`) and datasets by their
registered names; each model and dataset builder contributes its default YAML, merged *under*
what the run YAML says; `--options a.b=c` overrides come last.  Every section is checked
against the schemas in `lavis/common/schema.py`: an unknown key or a wrong type stops with a
message naming the key and the valid ones, and a value outside the range or choices the schema
states (its `VALID` tables) with `config: KEY = VALUE: must be ...`, all before anything is
built.  Keys of the original's configs that nothing here
reads (`schema.ORIGINAL_UNUSED_KEYS`) are dropped first, so those files load unchanged.
"""

import dataclasses
import json

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from lavis.common.errors import UserError
from lavis.common.registry import registry
from lavis.common.schema import (
    ORIGINAL_UNUSED_KEYS,
    VIT_MODELS,
    DatasetConfig,
    ModelConfig,
    PreprocessConfig,
    RunConfig,
)

SECTIONS = ("model", "datasets", "run")


class ConfigError(UserError, ValueError):
    """A config problem, worded for the person who wrote the YAML."""


def drop_unused_keys(where, layer):
    """`layer` (the config section at `where`, e.g. "model" or "datasets.NAME") without the
    original's keys that nothing here reads (`schema.ORIGINAL_UNUSED_KEYS`)."""
    if layer is None:
        return None
    layer = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(layer), resolve=False))
    prefix = where.split(".")
    for pattern in ORIGINAL_UNUSED_KEYS:
        parts = pattern.split(".")
        if len(parts) > len(prefix) and all(p in ("*", w) for p, w in zip(parts, prefix)):
            _drop_path(layer, parts[len(prefix) :])
    return layer


def _drop_path(node, parts):
    if not isinstance(node, DictConfig):
        return
    names = list(node.keys()) if parts[0] == "*" else [parts[0]]
    for name in names:
        if name not in node:
            continue
        if len(parts) == 1:
            node.pop(name)
        else:
            _drop_path(node[name], parts[1:])


def _checked_merge(where, schema, *layers):
    """Merge `layers` over the structured `schema`; turn OmegaConf errors into ConfigError."""
    try:
        merged = OmegaConf.structured(schema)
        for layer in layers:
            if layer is not None:
                merged = OmegaConf.merge(merged, drop_unused_keys(where, layer))
        OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = f"{where}.{err.full_key}" if getattr(err, "full_key", None) else where
        message = str(getattr(err, "msg", err)).splitlines()[0]
        owner = getattr(err, "object_type", None)
        if dataclasses.is_dataclass(owner) and isinstance(err, (ConfigKeyError, ConfigAttributeError)):
            valid = ", ".join(f.name for f in dataclasses.fields(owner))
            message += f"; valid keys here: {valid}"
        raise ConfigError(f"config key '{key}': {message}") from None
    check_values(where, merged)
    return merged


def bad_value(key, value, problem):
    """The ConfigError of a value outside what its key allows: `config: KEY = VALUE: PROBLEM`."""
    return ConfigError(f"config: {key} = {value!r}: {problem}")


def check_values(where, node):
    """Each key of the structured `node` (at `where`) against its schema's `VALID` table, and the
    same for the structured sections inside it; the first value outside its range is a ConfigError."""
    schema = OmegaConf.get_type(node)
    for key, rule in getattr(schema, "VALID", {}).items():
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        problem = rule.problem(value)
        if problem is not None:
            raise bad_value(f"{where}.{key}", value, problem)
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(child)):
            check_values(f"{where}.{key}", child)


def check_registered(run):
    """run.task, run.runner and run.lr_sched name registered components."""
    for key, kind in (("task", "task"), ("runner", "runner"), ("lr_sched", "lr_scheduler")):
        names = sorted(registry.mapping[kind])
        if run[key] not in names:
            raise bad_value(f"run.{key}", run[key], f"must be one of {', '.join(repr(n) for n in names)}")


def _section(cfg, name, where):
    """Section `name` of `cfg` (`where`: the file or --options), a mapping; ConfigError otherwise."""
    node = cfg.get(name) if cfg is not None else None
    if node is not None and not isinstance(node, DictConfig):
        raise ConfigError(f"{where}: '{name}' must be a mapping of keys to values, not {_kind(node)}")
    return OmegaConf.create({}) if node is None else node


def _kind(node):
    return "a list" if isinstance(node, ListConfig) else f"{node!r} ({type(node).__name__})"


def load_yaml(path):
    try:
        return OmegaConf.load(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except Exception as err:  # yaml syntax errors come in several types, over several lines
        raise ConfigError(f"cannot parse config file {path}: {' '.join(str(err).split())}") from None


def build_model_config(user_model, option_model=None):
    """Schema <- model class defaults (by arch/model_type) <- user section <- options."""
    peek = OmegaConf.merge(user_model, option_model or {})
    arch = peek.get("arch")
    if not arch:
        raise ConfigError(f"config key 'model.arch' is required; registered models: {registry.list_models()}")
    model_cls = registry.get_model_class(arch)
    model_type = peek.get("model_type") or model_cls.default_model_type()
    defaults = model_cls.default_config(model_type, load_yaml)
    model = _checked_merge(
        "model", ModelConfig, defaults.get("model"), {"model_type": model_type}, user_model, option_model
    )
    check_model_shapes(model)
    return model


def check_model_shapes(model):
    """The sizes that must divide each other (each part's attention heads its width, the ViT's
    patch the image), so that a model that cannot be built stops here, naming the keys."""
    vit = model.vit_arch if model.vit_arch is not None else VIT_MODELS[model.vit_model]
    patch = "model.vit_arch.patch_size" if model.vit_arch is not None else f"model.vit_model {model.vit_model}"
    if model.image_size % vit.patch_size:
        raise bad_value(
            "model.image_size",
            model.image_size,
            f"must be a multiple of the ViT's patch size {vit.patch_size} ({patch})",
        )
    for key, arch, width in (
        ("vit_arch", model.vit_arch, "embed_dim"),
        ("qformer_arch", model.qformer_arch, "hidden_size"),
        ("llm_arch", model.llm_arch, "hidden_size"),
    ):
        if arch is not None and arch[width] % arch.num_heads:
            raise bad_value(
                f"model.{key}.num_heads", arch.num_heads, f"must divide model.{key}.{width} ({arch[width]})"
            )


def load_preprocess_config(model_cfg):
    """The `preprocess` section of the model's default YAML (processors for load_model_and_preprocess),
    its image processors at the model's `image_size` (which options may have changed)."""
    model_cls = registry.get_model_class(model_cfg.arch)
    defaults = model_cls.default_config(model_cfg.model_type, load_yaml)
    preprocess = _checked_merge("preprocess", PreprocessConfig, defaults.get("preprocess"))
    for processor in preprocess.vis_processor.values():
        if processor is not None and "image_size" in processor:
            processor.image_size = model_cfg.image_size
    return preprocess


def check_image_sizes(model, datasets):
    """Each dataset's image processors must make images of the model's `image_size`."""
    for name, dataset in datasets.items():
        for split, processor in dataset.vis_processor.items():
            size = None if processor is None else processor.get("image_size")
            if size is not None and size != model.image_size:
                raise ConfigError(
                    f"config key 'datasets.{name}.vis_processor.{split}.image_size' is {size} but "
                    f"'model.image_size' is {model.image_size}: set both to the same size"
                )


def check_video_settings(name, dataset):
    """`frame_marker` a format string whose only field is {i} (`max_frames` has its range in the schema)."""
    try:
        dataset.frame_marker.format(i=1)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"config key 'datasets.{name}.frame_marker' {dataset.frame_marker!r} is not a format with only {{i}} "
            f"(the frame's number) in braces: {err!r}"
        ) from None


def build_dataset_config(name, user_dataset, option_dataset=None):
    builder_cls = registry.get_builder_class(name)
    defaults = load_yaml(builder_cls.default_config_path()).datasets[name]
    dataset = _checked_merge(f"datasets.{name}", DatasetConfig, defaults, user_dataset, option_dataset)
    check_video_settings(name, dataset)
    return dataset


class Config:
    """The merged, checked run config; `args` has `cfg_path` and `options` (a list of a.b=c)."""

    def __init__(self, args):
        user = load_yaml(args.cfg_path)
        try:
            options = OmegaConf.from_dotlist(list(args.options or []))
        except OmegaConfBaseException as err:
            raise ConfigError(f"cannot parse --options {args.options}: {err}") from None
        self.config = self.build(user, options)

    @staticmethod
    def build(user, options=None):
        options = options if options is not None else OmegaConf.create({})
        for cfg, where in ((user, "config file"), (options, "--options")):
            if not isinstance(cfg, DictConfig):
                raise ConfigError(f"{where}: must be a mapping of {', '.join(SECTIONS)}, not {_kind(cfg)}")
            unknown = sorted(set(cfg.keys()) - set(SECTIONS))
            if unknown:
                raise ConfigError(f"{where}: unknown top-level key(s) {unknown}; valid: {list(SECTIONS)}")

        def sections(name):  # the file's and the options' section `name`
            return _section(user, name, "config file"), _section(options, name, "--options")

        model = build_model_config(*sections("model"))
        user_datasets, option_datasets = sections("datasets")
        datasets = {}
        for name in list(user_datasets.keys()) + [k for k in option_datasets.keys() if k not in user_datasets]:
            datasets[name] = build_dataset_config(name, user_datasets.get(name), option_datasets.get(name))
        run = _checked_merge("run", RunConfig, *sections("run"))
        check_image_sizes(model, datasets)
        check_registered(run)
        vit = model.get("vit_arch")
        if vit is not None and vit.pos_embed_init == "sincos" and vit.embed_dim % 4:
            raise bad_value(
                "model.vit_arch.pos_embed_init", "sincos", f"needs an embed_dim divisible by 4, not {vit.embed_dim}"
            )
        if run.fsdp_cpu_offload and run.strategy != "fsdp":
            raise ConfigError(
                f"config key 'run.fsdp_cpu_offload': True offloads FSDP's shards, but run.strategy is "
                f"{run.strategy!r}: set run.strategy=fsdp, or drop the key"
            )
        return OmegaConf.create({"model": model, "datasets": datasets, "run": run})

    @property
    def run_cfg(self) -> DictConfig:
        return self.config.run

    @property
    def model_cfg(self) -> DictConfig:
        return self.config.model

    @property
    def datasets_cfg(self) -> DictConfig:
        return self.config.datasets

    def to_dict(self):
        return OmegaConf.to_container(self.config, resolve=True)

    def pretty_print(self):
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
