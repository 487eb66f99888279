"""`python -m lavis.tools.show_sample`: a training sample as the model sees it, supervised spans marked."""

import textwrap

from lavis.tools import show_sample


def write_cfg(shapes_root, tmp_path, model_type):
    path = tmp_path / "run.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            model: {{arch: minigpt4qwen, model_type: {model_type}}}
            datasets:
              shapes_instruction:
                generator: {{num_train: 40, num_val: 12}}  # the shared fixture's sizes: nothing regenerated
                build_info:
                  annotations:
                    train: {{storage: {shapes_root / "train.json"}}}
                    val: {{storage: {shapes_root / "val.json"}}}
                  images: {{storage: {shapes_root / "image"}}}
            run: {{output_dir: {tmp_path / "out"}, device: cpu}}
            """
        )
    )
    return str(path)


def test_llama_style_sample_shows_its_template_and_supervised_reply(shapes_root, tmp_path, capsys):
    assert show_sample.main(["--cfg-path", write_cfg(shapes_root, tmp_path, "tiny_llama"), "--index", "3"]) == 0
    out = capsys.readouterr().out
    assert "train.json row 3" in out and "<|begin_of_text|><|start_header_id|>user<|end_header_id|>" in out
    assert "<image: 8 slots>" in out and out.count("[[") == 2 and "<|eot_id|>]]" in out  # two replies, closed
    assert "labels: the assistant replies and their end-of-turn tokens" in out


def test_chatml_sample_and_a_bad_index(shapes_root, tmp_path, capsys):
    cfg = write_cfg(shapes_root, tmp_path, "tiny")
    assert show_sample.main(["--cfg-path", cfg]) == 0
    out = capsys.readouterr().out
    assert "[[<|im_start|>]]system\nYou are a helpful assistant." in out and "labels:" not in out
    assert show_sample.main(["--cfg-path", cfg, "--index", "999"]) == 2
    assert "error: --index 999: shapes_instruction/train has 40 samples" in capsys.readouterr().err
