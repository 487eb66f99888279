import pytest

import lavis  # noqa: F401
from lavis.common.registry import Registry, UnknownNameError, registry


def test_components_registered_by_their_config_names():
    assert "minigpt4qwen" in registry.list_models()
    assert {"minigpt4_instruction", "llava_instruction", "shapes_instruction"} <= set(registry.list_builders())
    assert {"blip2_image_train", "blip_image_eval", "base_instruction"} <= set(registry.list_processors())
    assert "image_text_pretrain" in registry.list_tasks()
    assert "runner_base" in registry.list_runners()
    assert "linear_warmup_cosine_lr" in registry.list_lr_schedulers()


def test_unknown_name_lists_registered_ones():
    with pytest.raises(UnknownNameError) as err:
        registry.get_model_class("minigpt5")
    assert "unknown model 'minigpt5'" in str(err.value)
    assert "minigpt4qwen" in str(err.value)


def test_same_name_for_another_class_is_refused():
    reg = Registry()

    @reg.register_task("t")
    class A:
        pass

    with pytest.raises(KeyError, match="already registered"):

        @reg.register_task("t")
        class B:
            pass

    assert reg.get_task_class("t") is A


def test_paths_registered():
    assert registry.get_path("cache_root").rstrip("/").endswith("cache")
