"""Peak memory of loading a Qwen-7B-Chat-format folder through the project's loader.

Writes a Qwen-1-format folder (`config.json` with `model_type: qwen`, bf16, real vocabulary
151,936, hidden 2048, sharded with an index) tensor by tensor, then loads it with
`lavis.models.llm.hf_llm.load_llm` in a fresh subprocess and reports

* the weight files' size on disk,
* the peak resident memory (VmHWM, reset right before loading; ru_maxrss where there is no
  /proc) minus the resident memory right before loading (after the imports), and that over
  the size: the loader's promise is <= 1.3;
* the same after reading every parameter once (`.bin` shards stay file-backed until used, so
  their pages only count once touched).

Usage: python benchmarks/loading_memory.py [--layers 2] [--format safetensors|bin|both] [--dir DIR] [--keep]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

HIDDEN, HEADS, INTERMEDIATE, VOCAB = 2048, 16, 11008, 151936


def qwen_config(layers):
    return {
        "architectures": ["QWenLMHeadModel"],
        "model_type": "qwen",
        "bf16": True,
        "fp16": False,
        "fp32": False,
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "kv_channels": HIDDEN // HEADS,
        "num_hidden_layers": layers,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_epsilon": 1e-6,
        "rotary_emb_base": 10000,
        "rotary_pct": 1.0,
        "seq_length": 8192,
        "max_position_embeddings": 8192,
        "no_bias": True,
        "tie_word_embeddings": False,
        "use_dynamic_ntk": True,
        "use_logn_attn": True,
        "vocab_size": VOCAB,
    }


def tensor_specs(layers):
    import torch

    bf16, f = torch.bfloat16, INTERMEDIATE // 2
    specs = [("transformer.wte.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"transformer.h.{i}."
        specs += [
            (p + "ln_1.weight", (HIDDEN,)),
            (p + "attn.c_attn.weight", (3 * HIDDEN, HIDDEN)),
            (p + "attn.c_attn.bias", (3 * HIDDEN,)),
            (p + "attn.c_proj.weight", (HIDDEN, HIDDEN)),
            (p + "ln_2.weight", (HIDDEN,)),
            (p + "mlp.w1.weight", (f, HIDDEN)),
            (p + "mlp.w2.weight", (f, HIDDEN)),
            (p + "mlp.c_proj.weight", (HIDDEN, f)),
        ]
    specs += [("transformer.ln_f.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return [(name, shape, bf16) for name, shape in specs]


def write_folder(folder, layers, fmt):
    """Shard 1: embeddings + first half of the layers; shard 2: the rest + ln_f + lm_head."""
    import torch

    # defer: the parent process, which only starts the writer and the measurer, never imports lavis
    from lavis.models.weight_files import write_safetensors_lazy

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(qwen_config(layers), f, indent=2)
    specs = tensor_specs(layers)
    split = 1 + 8 * ((layers + 1) // 2)
    shards = [specs[:split], specs[split:]]
    gen = torch.Generator().manual_seed(0)

    def make(shape, dtype):
        return lambda: (torch.randn(shape, generator=gen) * 0.02).to(dtype)

    weight_map = {}
    for j, shard in enumerate(shards):
        if fmt == "safetensors":
            name = f"model-{j + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors_lazy(
                os.path.join(folder, name), [(n, s, d, make(s, d)) for n, s, d in shard], {"format": "pt"}
            )
        else:
            name = f"pytorch_model-{j + 1:05d}-of-{len(shards):05d}.bin"
            torch.save({n: make(s, d)() for n, s, d in shard}, os.path.join(folder, name))
        weight_map.update({n: name for n, _, _ in shard})
    index = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
    total = sum(os.path.getsize(os.path.join(folder, n)) for n in set(weight_map.values()))
    with open(os.path.join(folder, index), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    return total


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: clear_refs 5), so the peak is the loading's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak():
    """Peak resident memory in bytes: VmHWM (resettable) where there is one, else ru_maxrss."""
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(folder):
    """Run in a fresh process: load the folder, print JSON with the RSS figures (bytes)."""
    import gc
    import time

    import psutil
    import torch

    # defer: imported here so that the baseline below counts the imports
    from lavis.models.llm.hf_llm import load_llm

    gc.collect()
    process = psutil.Process()
    reset = _reset_peak()
    baseline = process.memory_info().rss
    start = time.perf_counter()
    model = load_llm(folder)
    seconds = time.perf_counter() - start
    peak_load = _peak()
    after_load = process.memory_info().rss
    with torch.no_grad():  # touch one element per 4 KiB page of every parameter
        for p in model.parameters():
            flat = p.detach().reshape(-1)
            float(flat[:: max(1, 4096 // flat.element_size())].float().sum())
    peak_touched = _peak()
    if not reset:  # ru_maxrss counts from process start: the baseline must not exceed it
        assert baseline <= peak_load
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    print(
        json.dumps(
            dict(
                baseline=baseline,
                peak_load=peak_load,
                after_load=after_load,
                peak_touched=peak_touched,
                params=params,
                dtypes=dtypes,
                seconds=seconds,
            )
        )
    )


def run(fmt, layers, root, keep):
    folder = os.path.join(root, f"qwen_{fmt}")
    written = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--write", folder, "--format", fmt, "--layers", str(layers)],
        cwd=REPO,
    )
    if written.returncode:
        raise SystemExit(f"writing the {fmt} folder failed")
    size = sum(
        os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith((".safetensors", ".bin"))
    )
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", folder], capture_output=True, text=True, cwd=REPO
    )
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"measurement failed for {fmt}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    gib = 1024**3
    load = r["peak_load"] - r["baseline"]
    touched = r["peak_touched"] - r["baseline"]
    print(
        f"{fmt:12s} files {size / gib:6.3f} GiB | params {r['params'] / gib:6.3f} GiB {','.join(r['dtypes'])} | "
        f"peak while loading {load / gib:6.3f} GiB = {load / size:4.2f}x | "
        f"peak with every parameter read {touched / gib:6.3f} GiB = {touched / size:4.2f}x | load {r['seconds']:.1f} s"
    )
    if not keep:
        shutil.rmtree(folder)
    return max(load, touched) / size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--format", choices=("safetensors", "bin", "both"), default="both")
    parser.add_argument("--dir", default=None, help="where to write the folders (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    if args.write:
        write_folder(args.write, args.layers, args.format)
        return 0
    root = args.dir or tempfile.mkdtemp(prefix="loading_memory_")
    formats = ("safetensors", "bin") if args.format == "both" else (args.format,)
    print(
        f"Qwen-1 format, hidden {HIDDEN}, {args.layers} layers, vocab {VOCAB}, bf16, 2 shards + index; baseline "
        "= RSS after imports"
    )
    worst = max(run(fmt, args.layers, root, args.keep) for fmt in formats)
    if not args.dir and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"worst ratio {worst:.2f} (limit 1.30): {'OK' if worst <= 1.3 else 'OVER'}")
    return 0 if worst <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
