"""run.compile: the tiny model's LLM layers compiled with inductor train to the same losses as eager."""

import json

import pytest
import torch

from lavis.runners.compile import CompileError, compile_llm_layers
from tests.helpers.runs import make_runner, read_log, run_config

# inductor fuses and reorders float32 arithmetic: compiled and eager losses differed by 1e-6 on rows
# of mixed lengths, by 0.0 on the rows below (one thread; the log rounds to 6 decimals)
LOSS_TOLERANCE = 1e-4


def same_length_rows(path, count=16):
    """`count` one-turn rows of the same question and answer on the first `count` images of the
    shapes set: every batch has one shape, so each layer compiles once (a new sequence length or
    batch size would compile again, dynamically: 42 s instead of 21 with a cold inductor cache)."""
    question = {"from": "user", "value": "<Img><ImageHere></Img> What colour is the shape?"}
    rows = [
        {"image": f"{i:05d}.png", "conversations": [question, {"from": "assistant", "value": "red"}]}
        for i in range(count)
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def losses(shapes_root, tmp_path, compile):
    torch.set_num_threads(1)
    cfg = run_config(
        shapes_root, tmp_path / str(compile), max_epoch=1, valid_splits=[], batch_size_train=8, compile=compile
    )
    train = cfg.config.datasets.shapes_instruction.build_info.annotations.train
    train.storage = str(same_length_rows(tmp_path / "same_length.json"))
    runner = make_runner(cfg)
    runner.train()
    return runner, [r["loss"] for r in read_log(tmp_path / str(compile) / "job" / "log.jsonl") if "loss" in r]


@pytest.mark.slow
def test_compiled_llm_layers_train_to_the_same_losses(shapes_root, tmp_path):
    eager_runner, eager = losses(shapes_root, tmp_path, False)
    compiled_runner, compiled = losses(shapes_root, tmp_path, True)
    layer = compiled_runner.model._decoder().layers[0]
    assert "forward" in vars(layer) and "forward" not in vars(eager_runner.model._decoder().layers[0])
    assert len(eager) == len(compiled) == 2  # the second step's loss follows the first's compiled backward
    print("max |compiled - eager| loss:", max(abs(a - b) for a, b in zip(eager, compiled)))
    assert max(abs(a - b) for a, b in zip(eager, compiled)) < LOSS_TOLERANCE, (eager, compiled)
    assert eager[1] != eager[0]
    assert set(compiled_runner.model.state_dict()) == set(eager_runner.model.state_dict())  # checkpoints unchanged


def test_compile_off_leaves_the_model_alone(tiny_model):
    assert compile_llm_layers(tiny_model, False, "cpu") == 0
    assert not any("forward" in vars(layer) for layer in tiny_model._decoder().layers)


def test_no_cpu_compiler_is_a_one_line_error(tiny_model, monkeypatch):
    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler():
        raise torch._inductor.exc.InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(CompileError, match=r"^run.compile: true needs a C\+\+ compiler .*set run.compile=false$"):
        compile_llm_layers(tiny_model, True, "cpu")


def test_compile_failure_is_a_one_line_error(tiny_model):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("backend exploded\nsecond line")

    assert compile_llm_layers(tiny_model, True, "cpu", backend=broken_backend) == 2
    sample = {
        "image": torch.zeros(1, 3, 64, 64),
        "conversations": [[{"from": "human", "value": "<ImageHere> hi"}, {"from": "gpt", "value": "yes"}]],
    }
    with pytest.raises(
        CompileError,
        match=r"torch.compile failed on LLM decoder layer 0 \(RuntimeError: backend exploded\); set run.compile=false$",
    ):
        tiny_model(sample)


def test_only_training_forwards_run_compiled_and_generation_stays_eager(tiny_model):
    compiled_graphs = []

    def counting_backend(gm, example_inputs):
        compiled_graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compile_llm_layers(tiny_model, True, "cpu", backend=counting_backend)
    image = torch.zeros(1, 3, 64, 64)
    prompt = tiny_model.prompt.generation_ids("<ImageHere> colour?", [], None, None)[0]
    tiny_model.generate_from_ids([prompt], image, max_new_tokens=4)
    assert compiled_graphs == []  # chat/evaluation: no compilation at any KV-cache length
    sample = {
        "image": image,
        "conversations": [[{"from": "human", "value": "<ImageHere> hi"}, {"from": "gpt", "value": "yes"}]],
    }
    tiny_model(sample)["loss"].backward()
    assert compiled_graphs  # the training forward ran compiled (both layers share one graph)
