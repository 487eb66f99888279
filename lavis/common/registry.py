"""Name -> class registry: the one place where YAML names meet Python classes.

Models, dataset builders, processors, tasks, runners and lr schedulers register
themselves with a decorator; configs refer to them by name.  Paths such as the
cache root are registered here too, by `lavis/__init__.py`.
"""

from lavis.common.errors import UserError


class UnknownNameError(UserError, KeyError):
    """Raised when a config names something nobody registered."""

    def __str__(self):  # KeyError would quote the whole message
        return str(self.args[0])


class Registry:
    KINDS = ("model", "builder", "processor", "task", "runner", "lr_scheduler")

    def __init__(self):
        self.mapping = {kind: {} for kind in self.KINDS}
        self.mapping["path"] = {}

    # -- registration ----------------------------------------------------
    def _register(self, kind, name):
        def wrap(cls):
            table = self.mapping[kind]
            if name in table and table[name] is not cls:
                raise KeyError(f"{kind} name '{name}' already registered by {table[name].__name__}")
            table[name] = cls
            return cls

        return wrap

    def register_model(self, name):
        return self._register("model", name)

    def register_builder(self, name):
        return self._register("builder", name)

    def register_processor(self, name):
        return self._register("processor", name)

    def register_task(self, name):
        return self._register("task", name)

    def register_runner(self, name):
        return self._register("runner", name)

    def register_lr_scheduler(self, name):
        return self._register("lr_scheduler", name)

    def register_path(self, name, path):
        self.mapping["path"][name] = str(path)

    # -- lookup ----------------------------------------------------------
    def _get(self, kind, name):
        table = self.mapping[kind]
        if name not in table:
            valid = ", ".join(sorted(table)) or "(none registered)"
            raise UnknownNameError(f"unknown {kind} '{name}'; registered {kind}s: {valid}")
        return table[name]

    def get_model_class(self, name):
        return self._get("model", name)

    def get_builder_class(self, name):
        return self._get("builder", name)

    def get_processor_class(self, name):
        return self._get("processor", name)

    def get_task_class(self, name):
        return self._get("task", name)

    def get_runner_class(self, name):
        return self._get("runner", name)

    def get_lr_scheduler_class(self, name):
        return self._get("lr_scheduler", name)

    def get_path(self, name):
        return self._get("path", name)

    def list_models(self):
        return sorted(self.mapping["model"])

    def list_builders(self):
        return sorted(self.mapping["builder"])

    def list_processors(self):
        return sorted(self.mapping["processor"])

    def list_tasks(self):
        return sorted(self.mapping["task"])

    def list_runners(self):
        return sorted(self.mapping["runner"])

    def list_lr_schedulers(self):
        return sorted(self.mapping["lr_scheduler"])


registry = Registry()
