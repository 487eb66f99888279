"""lavis.tools.export_hf: the exported folder, loaded by transformers alone in a process that never
imports lavis (tests/helpers/hf_export_check.py), computes what our chat computes: the same prompt
ids from `apply_chat_template`, the same pixels, logits within 1e-4 (fp32) and the same greedy
replies, for the trained tiny default (Qwen-style, tiktoken vocabulary), a checkpoint the runner
wrote for the default run's config (exported with its job folder's config.json), a tiny
Llama-style model with LoRA adapters (folded in by the export, written in several shards), one on
a transformers Qwen2 folder with tied embeddings and no chat template (ChatML), and a model of
the real recipe built from tiny files in the original formats (Qwen-7B-Chat's, converted
to Qwen2)."""

import json
import os
import random
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lavis.chat import ChatModel, ChatSession, load_chat_model, load_image
from lavis.common.config import load_preprocess_config
from lavis.common.rng import set_seed
from lavis.datasets.synthetic.shapes import draw_shape
from lavis.models import load_model_and_preprocess, load_preprocess
from lavis.models.llm.qwen_tiktoken import QwenTokenizer
from lavis.tools import export_hf
from tests.helpers import REPO
from tests.helpers.chat import QUESTION_EN, QUESTION_ZH, save_runner_checkpoint
from tests.helpers.runs import make_runner, run_config
from tests.models.reference_files import cfg_options, write_original_files, write_qwen2_folder

MAX_NEW_TOKENS = 8
#: typed markers, each between spaces: text for both sides, with the same token boundaries
MARKED = "Which one <|im_end|> is <ImageHere> <|eot_id|> red?"
#: typed markers touching each other: still text for both, but the boundaries may differ (README)
ADJACENT = "<|im_end|><|extra_0|><|eot_id|>x"


def export(ckpt, folder, *extra):
    assert export_hf.main(["--ckpt-path", str(ckpt), "--output-dir", str(folder), *extra]) == 0
    return folder


def image_part(path):
    return {"type": "image", "path": str(path)}


def user(images, text):
    return {"role": "user", "content": [*map(image_part, images), {"type": "text", "text": text}]}


def chat_side(chat_model, images):
    """Our chat's prompts and replies for the four cases, and the same conversations as messages."""
    cases, messages = [], []

    def ask(session, query, pictures, history_messages):
        session.add_images([str(p) for p in pictures])
        reply = session.reply(query)
        reply.run(lambda text: None)
        cases.append({"prompt": reply.prompt_ids, "reply": reply.reply_ids, "response": reply.response})
        messages.append([*history_messages, user(pictures, query)])
        return reply.response

    session = ChatSession(chat_model)
    session.settings.set("max_new_tokens", MAX_NEW_TOKENS)
    first = ask(session, QUESTION_EN, images[:1], [])
    ask(session, QUESTION_ZH, [], [user(images[:1], QUESTION_EN), {"role": "assistant", "content": first}])
    for query, pictures in ((MARKED, images), (ADJACENT, images[1:])):
        session.reset()
        ask(session, query, pictures, [])
    return cases, messages


@pytest.fixture(scope="session")
def exported(tmp_path_factory, trained_checkpoint, chat_image, shapes_root):
    """Both exports, our chat's results, and transformers' results from one separate process."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export_hf")
    square = root / "blue_square.png"
    draw_shape("square", "blue", 80, rng=4)[0].save(square)  # 80 px: the processors resize it to 64
    images = [chat_image, square]

    qwen = load_chat_model(trained_checkpoint, device="cpu")
    set_seed(42)  # the run seed save_runner_checkpoint records: the export rebuilds the frozen base LLM from it
    llama, vis, _ = load_model_and_preprocess("minigpt4qwen", "tiny_llama", cfg_options={"get_lora": True})
    with torch.no_grad():  # adapters away from zero, so that folding them matters
        for name, param in llama.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    llama_ckpt = save_runner_checkpoint(llama.eval(), str(root / "llama_run"))
    files = write_original_files(root / "original")
    qwen1, vis1, _ = load_model_and_preprocess("minigpt4qwen", "qwen7b_chat", cfg_options=cfg_options(files))
    with torch.no_grad():  # llm_proj, the part that trains, away from its initial values
        qwen1.llm_proj.weight.normal_(0, 0.2)
    qwen1_ckpt = save_runner_checkpoint(qwen1.eval(), str(root / "qwen1_run"))
    # a Qwen2 folder: tied embeddings, no chat template (ChatML), no spare slot token (one is added)
    write_qwen2_folder(root / "qwen2_llm", tied=True)
    qwen2, vis2, _ = load_model_and_preprocess(
        "minigpt4qwen",
        "tiny",
        cfg_options={"llm_arch": None, "llm_tokenizer": "", "llm_model": str(root / "qwen2_llm")},
    )
    qwen2_ckpt = save_runner_checkpoint(qwen2.eval(), str(root / "qwen2_run"))
    run_cfg = run_config(shapes_root, root / "run", max_epoch=1, valid_splits=[], init_lr=1e-2)
    runner = make_runner(run_cfg)  # the default run's config (train_tiny.yaml) on the small shapes set
    runner.train()
    run_vis, _ = load_preprocess(load_preprocess_config(run_cfg.model_cfg))
    families = {
        "qwen": (qwen, export(trained_checkpoint, root / "qwen_hf")),
        "llama": (
            ChatModel(llama, vis["eval"], llama_ckpt, "tiny_llama", torch.device("cpu")),
            export(llama_ckpt, root / "llama_hf", "--max-shard-size", "200KB"),
        ),
        "runner": (
            ChatModel(runner.model.eval(), run_vis["eval"], None, "tiny", torch.device("cpu")),
            export(
                root / "run" / "job" / "checkpoint_0.pth",
                root / "runner_hf",
                "--cfg-path",
                str(root / "run" / "job" / "config.json"),
            ),
        ),
        "qwen2": (
            ChatModel(qwen2, vis2["eval"], qwen2_ckpt, "tiny", torch.device("cpu")),
            export(qwen2_ckpt, root / "qwen2_hf"),
        ),
        "qwen1": (
            ChatModel(qwen1, vis1["eval"], qwen1_ckpt, "qwen7b_chat", torch.device("cpu")),
            export(qwen1_ckpt, root / "qwen1_hf"),
        ),
    }
    args, out = [], {}
    for name, (chat_model, folder) in families.items():
        cases, messages = chat_side(chat_model, images)
        cases_path = root / f"{name}_cases.json"
        eps = chat_model.model.ln_vision.eps
        cases_path.write_text(
            json.dumps([{"messages": m, "max_new_tokens": MAX_NEW_TOKENS, "post_layernorm_eps": eps} for m in messages])
        )
        args += [str(folder), str(cases_path), str(root / f"{name}_result.safetensors")]
        out[name] = {"chat": chat_model, "folder": folder, "cases": cases, "images": images}
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "helpers", "hf_export_check.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in families:
        path = root / f"{name}_result.safetensors"
        with safe_open(str(path), "pt") as f:
            assert f.metadata()["lavis_imported"] == "False"
        out[name]["hf"] = load_file(str(path))
    return out


FAMILIES = ["qwen", "llama", "runner", "qwen2", "qwen1"]


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_ids_from_the_chat_template_equal_the_chat_prompts(exported, family):
    side = exported[family]
    for i in range(3):  # one image; a second turn after the first's reply; two images and typed markers
        assert side["hf"][f"case{i}.input_ids"].tolist() == side["cases"][i]["prompt"], f"case {i}"
    tok = side["chat"].tokenizer
    slot = side["chat"].model.replace_image_token_id
    ours, theirs = side["cases"][3]["prompt"], side["hf"]["case3.input_ids"].tolist()
    assert tok.decode(theirs) == tok.decode(ours)  # touching typed markers: the same text...
    assert theirs.count(slot) == ours.count(slot) == side["chat"].model.num_query_token  # ...never a slot
    assert sum(t in side["chat"].model.stop_ids for t in theirs) == sum(t in side["chat"].model.stop_ids for t in ours)


@pytest.mark.parametrize("family", FAMILIES)
def test_pixels_and_logits_equal_ours(exported, family):
    side = exported[family]
    chat_model = side["chat"]
    model = chat_model.model
    for i, pictures in ((0, side["images"][:1]), (2, side["images"])):
        pixels = torch.stack([chat_model.process_image(load_image(str(p))) for p in pictures])
        assert (side["hf"][f"case{i}.pixel_values"] - pixels).abs().max() < 1e-6
        ids = torch.tensor([side["cases"][i]["prompt"]])
        with torch.no_grad():
            logits = model.llm_model(inputs_embeds=model.embed_with_images(ids, model.encode_image(pixels))).logits[0]
        diff = (side["hf"][f"case{i}.logits"] - logits).abs().max().item()
        assert diff <= 1e-4, f"case {i}: logits differ by {diff}"
        # the only difference is ln_vision's eps (transformers' vision config has one for every norm)
        exact = (side["hf"][f"case{i}.logits_exact_eps"] - logits).abs().max().item()
        assert exact <= 1e-6, f"case {i}: with ln_vision's eps, logits differ by {exact}"


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_replies_equal_ours(exported, family):
    side = exported[family]
    stops = side["chat"].model.stop_ids
    for i, case in enumerate(side["cases"][:3]):  # (case 3's prompts differ in token boundaries)
        ours, theirs = case["reply"], side["hf"][f"case{i}.reply"].tolist()
        if len(ours) < MAX_NEW_TOKENS:  # ours ended at a stop id, which transformers returns with the reply
            assert theirs[:-1] == ours and theirs[-1] in stops, f"case {i}: {theirs} {ours}"
        else:
            assert theirs == ours, f"case {i}"


def test_the_trained_checkpoint_answers_as_trained(exported):
    side = exported["qwen"]
    assert [c["response"] for c in side["cases"][:2]] == ["red", "圆形"]
    tok = side["chat"].tokenizer
    assert [tok.decode(side["hf"][f"case{i}.reply"].tolist(), skip_special_tokens=True) for i in range(2)] == [
        "red",
        "圆形",
    ]


def test_folder_contents(exported):
    qwen, llama = exported["qwen"]["folder"], exported["llama"]["folder"]
    assert sorted(os.listdir(qwen)) == [
        "README.md",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(qwen).st_mode & 0o777 == 0o777 & ~umask  # made as mkdir makes folders, not private
    shards = sorted(p for p in os.listdir(llama) if p.endswith(".safetensors"))
    assert len(shards) > 1 and (llama / "model.safetensors.index.json").exists()
    # every file as a plain write makes it (transformers writes its shards 0o600)
    for folder, names in ((qwen, os.listdir(qwen)), (llama, shards)):
        assert {name: os.stat(folder / name).st_mode & 0o777 for name in names} == dict.fromkeys(names, 0o666 & ~umask)
    config = json.loads((qwen / "config.json").read_text())
    model = exported["qwen"]["chat"].model
    assert config["image_token_index"] == model.replace_image_token_id and config["num_query_tokens"] == 8
    assert config["text_config"]["eos_token_id"] == model.stop_ids
    assert json.loads((qwen / "processor_config.json").read_text())["num_query_tokens"] is None
    generation = json.loads((qwen / "generation_config.json").read_text())
    assert generation["eos_token_id"] == model.stop_ids
    assert model.replace_image_token_id in generation["suppress_tokens"]
    card = (qwen / "README.md").read_text()
    assert "Blip2ForConditionalGeneration.from_pretrained" in card and "processor.tokenizer.chat_template" in card


def test_dtype_option(tmp_path, trained_checkpoint):
    export(trained_checkpoint, tmp_path / "bf16", "--dtype", "bf16")
    state = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert state["language_model.lm_head.weight"].dtype == torch.bfloat16
    assert state["vision_model.post_layernorm.weight"].dtype == torch.bfloat16
    assert state["qformer.layernorm.weight"].dtype == torch.float32 and state["query_tokens"].dtype == torch.float32


def test_the_real_qwen_vocabulary_converts_to_the_same_ids(real_qwen_vocab):
    """Qwen-7B-Chat's whole qwen.tiktoken through the export's conversion: our ids and text back."""
    ours = QwenTokenizer(real_qwen_vocab)
    theirs = export_hf.hf_tokenizer(ours, ours.special_token_ids["<|extra_0|>"], "", 8192)
    rng = random.Random(0)
    texts = [
        "Hello, world! What's up?  \n\n  x",
        "图中是什么形状？圆形。",
        "\u2f00\uf900 cafe\u0301 \ufb01",  # NFC: compatibility and combining characters
        "def f(x):\n    return x**2  # 12345678",
        "emoji 😀👍🏽 \t\r\n",
        "<|im_start|>user\nhi<|im_end|>\n<|extra_0|>",
        *("".join(rng.choice("ab c\n中文😀é1'.,") for _ in range(rng.randint(1, 40))) for _ in range(100)),
    ]
    for text in texts:
        ids = ours.encode(text)
        assert theirs.encode(text, add_special_tokens=False) == ids, text
        assert theirs.decode(ids) == ours.decode(ids)
    assert len(theirs) == len(ours) and theirs.image_token == "<|extra_0|>"


def one_line_error(capsys, argv):
    assert export_hf.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs(tmp_path, capsys, trained_checkpoint):
    out = str(tmp_path / "out")
    err = one_line_error(capsys, ["--ckpt-path", str(tmp_path / "nope.pth"), "--output-dir", out])
    assert "checkpoint not found" in err and "nope.pth" in err
    err = one_line_error(
        capsys, ["--ckpt-path", trained_checkpoint, "--output-dir", out, "--cfg-path", str(tmp_path / "no.yaml")]
    )
    assert "config file not found" in err
    torch.save({"model": {"llm_proj.weight": torch.zeros(2, 2)}}, tmp_path / "bare.pth")
    err = one_line_error(capsys, ["--ckpt-path", str(tmp_path / "bare.pth"), "--output-dir", out])
    assert "has no 'config' entry" in err and "--cfg-path" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    err = one_line_error(capsys, ["--ckpt-path", trained_checkpoint, "--output-dir", str(tmp_path / "full")])
    assert "is not an empty folder" in err and os.listdir(tmp_path / "full") == ["x.txt"]
    err = one_line_error(capsys, ["--ckpt-path", trained_checkpoint, "--output-dir", str(tmp_path / "a" / "b")])
    assert "does not exist" in err
    assert sorted(os.listdir(tmp_path)) == ["bare.pth", "full"]


def test_an_interrupted_export_leaves_no_folder(tmp_path, trained_checkpoint, monkeypatch):
    def interrupted(folder, *args):
        open(os.path.join(folder, "config.json"), "w").close()  # a first file, then the interruption
        raise KeyboardInterrupt

    monkeypatch.setattr(export_hf, "write_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_hf.main(["--ckpt-path", trained_checkpoint, "--output-dir", str(tmp_path / "out")])
    assert os.listdir(tmp_path) == []
