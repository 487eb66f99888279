"""The transformers side of the export tests, run as its own process: it never imports `lavis`.

    python tests/helpers/hf_export_check.py FOLDER CASES.json RESULT.safetensors [FOLDER CASES RESULT ...]

Loads FOLDER (written by `python -m lavis.tools.export_hf`) with transformers alone
(`Blip2ForConditionalGeneration`, `AutoProcessor`) and, for each case of CASES.json
(`{"messages": [...], "max_new_tokens": N}`, images as `{"type": "image", "path": ...}` parts),
builds the inputs with `processor.apply_chat_template(..., sanitize_control_tokens=True)` as the
exported README says, then stores the prompt ids, pixel values, fp32 logits of the prompt, the
greedy reply's ids (`generate`, the folder's generation config) and, for a case with
`"post_layernorm_eps"`, the logits with the vision tower's final norm at that eps, in
RESULT.safetensors as `case<i>.<name>`; its metadata says whether anything imported `lavis`.
"""

import copy
import json
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoProcessor, Blip2ForConditionalGeneration


def main(folder, cases_path, result_path):
    torch.set_num_threads(1)
    model = Blip2ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder)
    processor.chat_template = processor.tokenizer.chat_template  # the README's step (Blip2Processor drops it)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    out = {}
    for i, case in enumerate(cases):
        inputs = processor.apply_chat_template(
            case["messages"],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            sanitize_control_tokens=True,
        )
        with torch.no_grad():
            logits = model(**inputs).logits
        settings = copy.deepcopy(model.generation_config)  # the folder's, as its README passes it
        settings.max_new_tokens = case["max_new_tokens"]
        generated = model.generate(**inputs, generation_config=settings)
        if "post_layernorm_eps" in case:  # the model card's step for our numbers exactly
            norm = model.vision_model.post_layernorm
            eps, norm.eps = norm.eps, case["post_layernorm_eps"]
            with torch.no_grad():
                out[f"case{i}.logits_exact_eps"] = model(**inputs).logits[0].contiguous()
            norm.eps = eps
        out[f"case{i}.input_ids"] = inputs["input_ids"][0].contiguous()
        out[f"case{i}.pixel_values"] = inputs["pixel_values"].contiguous()
        out[f"case{i}.logits"] = logits[0].contiguous()
        out[f"case{i}.reply"] = generated[0, inputs["input_ids"].shape[1] :].contiguous()
    save_file(out, result_path, metadata={"lavis_imported": str(lavis_imported())})


def lavis_imported():
    return any(name == "lavis" or name.startswith("lavis.") for name in sys.modules)


if __name__ == "__main__":
    args = sys.argv[1:]
    for k in range(0, len(args), 3):
        main(*args[k : k + 3])
