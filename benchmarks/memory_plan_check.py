"""Check `python -m lavis.tools.memory_plan` against memory measured while training, on CPU.

Trains a small config (the tiny default's ViT and Q-former, a larger LLM: hidden 512, 8 layers,
27 M parameters in all, fp32, so that model state and activations, not the interpreter, fill
the memory) for 4 micro-batches of 8 x 56 tokens per rank on the synthetic shapes data, with 2
gloo ranks under torchrun, once per variant (ddp, fsdp, fsdp with grad checkpointing, with
accum_grad_iters 2, with run.fsdp_cpu_offload), and prints for each rank the plan's estimate
(`plan_memory(...).peak` for the same config on 2 processes) next to the measured peak.  Four
micro-batches: the optimizer states exist from the first step on, and with accumulation a
micro-batch after that step holds them and the accumulated gradients together.

Measured: the peak resident memory of the rank's process during training (Linux VmHWM, reset
with /proc/self/clear_refs just before the first step) minus its resident memory after the
imports, the process group and the datasets, before the model is built (the baseline).  The
processes run with MALLOC_MMAP_THRESHOLD_=65536, so glibc maps every tensor of 64 KiB or more
on its own and gives it back when freed: the full model each rank builds before FSDP shards it
does not stay resident, and the peak follows the live tensors.  torch has no allocator
statistics for CPU memory; RSS counts everything the process holds (allocator slack, gloo
buffers, kernel scratch space) and is what runs out.  The difference between the resident
memory at the first step and the baseline, less the model's tensors, is printed as `slack`.

    python benchmarks/memory_plan_check.py [--variants ddp fsdp ...] [--micro-batches 4]
"""

import argparse
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

NPROC, BATCH, SEQ = 2, 8, 56  # every shapes sample has >= 56 tokens: each one is cut to exactly 56
LLM = {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 1408}
VARIANTS = {
    "ddp": ["run.strategy=ddp"],
    "fsdp": ["run.strategy=fsdp"],
    "fsdp_ckpt": ["run.strategy=fsdp", "model.use_grad_checkpoint=True"],
    "fsdp_accum": ["run.strategy=fsdp", "run.accum_grad_iters=2"],
    "fsdp_offload": ["run.strategy=fsdp", "run.fsdp_cpu_offload=True"],
}
MIB = 1024**2


def write_config(folder, micro_batches):
    """The check's run config (and its shapes data) under `folder`; returns the YAML's path."""
    # defer: the parent process imports lavis only once it has a folder to write into
    from lavis.datasets.synthetic.shapes import ensure_shapes_dataset

    num_train = NPROC * BATCH * micro_batches
    root = ensure_shapes_dataset(os.path.join(folder, "shapes"), num_train=num_train, num_val=4, image_size=64, seed=0)
    llm = ", ".join(f"{k}: {v}" for k, v in LLM.items())
    path = os.path.join(folder, "memory_check.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            f"""model:
  arch: minigpt4qwen
  model_type: tiny
  llm_arch: {{{llm}, max_position_embeddings: 512, vocab_pad_to: 64}}
  max_txt_len: {SEQ}
datasets:
  shapes_instruction:
    generator: {{num_train: {num_train}, num_val: 4}}
    build_info:
      annotations:
        train: {{storage: {root / "train.json"}}}
        val: {{storage: {root / "val.json"}}}
      images: {{storage: {root / "image"}}}
run:
  init_lr: 1e-4
  warmup_steps: 1
  grad_norm_clip: 1.0
  max_epoch: 1
  batch_size_train: {BATCH}
  valid_splits: []
  device: cpu
  threads: 1
  tensorboard: False
  output_dir: {os.path.join(folder, "output")}
"""
        )
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local_bytes(tensors):
    """Bytes this rank holds of `tensors` (an FSDP shard counts its local part)."""
    local = (t.to_local() if hasattr(t, "to_local") else t for t in tensors)
    return sum(t.numel() * t.element_size() for t in local)


def _status(key):
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def _reset_peak():
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def measure(argv):
    """In each torchrun worker: build as train.py does, train one epoch, write this rank's figures."""
    import torch

    # defer: the baseline is taken after these imports
    import lavis  # noqa: F401  (registers every component)
    from lavis.common import dist_utils
    from lavis.common.config import Config
    from lavis.common.registry import registry
    from lavis.common.rng import set_seed
    from lavis.tasks import setup_task

    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-path")
    parser.add_argument("--out")
    parser.add_argument("--options", nargs="*", default=[])
    args = parser.parse_args(argv)
    cfg = Config(args)
    dist_utils.init_distributed_mode(cfg.run_cfg)
    set_seed(cfg.run_cfg.seed)
    task = setup_task(cfg)
    datasets = task.build_datasets(cfg)
    gc.collect()
    baseline = _status("VmRSS")
    model = task.build_model(cfg)
    runner = registry.get_runner_class(cfg.run_cfg.runner)(cfg, task, model, datasets, "check")
    loader = runner._train_loader(runner._train_set(), 0)
    live = _local_bytes(model.parameters()) + _local_bytes(model.buffers())
    gc.collect()
    start = _status("VmRSS")
    set_seed(cfg.run_cfg.seed + dist_utils.get_rank())
    torch.set_num_threads(1)
    _reset_peak()
    runner.train_epoch(0, loader)
    peak = _status("VmHWM")
    rank = dist_utils.get_rank()
    with open(os.path.join(args.out, f"rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump({"rank": rank, "baseline": baseline, "start": start, "peak": peak, "live": live}, f)
    dist_utils.barrier()
    # Leave without tearing anything down: freeing DDP's reducer at exit destroys the gloo group,
    # whose destructor can deadlock against gloo's worker thread waiting for the GIL (seen once,
    # torch 2.13, on a loaded machine).  The figures are written; nothing else is needed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_variant(cfg_path, name, options, folder, timeout=900):
    """{rank: figures} measured for one variant (2 gloo ranks under torchrun)."""
    out = os.path.join(folder, name)
    os.makedirs(out, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={NPROC}",
        f"--master_port={free_port()}",
        os.path.abspath(__file__),
        "--measure",
        "--cfg-path",
        cfg_path,
        "--out",
        out,
        "--options",
        *options,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, MALLOC_MMAP_THRESHOLD_="65536")
    # a session of its own: on a timeout torchrun and its workers are stopped together
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{name}: torchrun did not finish in {timeout} s") from None
    if proc.returncode:
        raise RuntimeError(f"{name}: torchrun failed ({proc.returncode}):\n{stderr[-4000:]}")
    figures = {}
    for rank in range(NPROC):
        with open(os.path.join(out, f"rank{rank}.json"), encoding="utf-8") as f:
            figures[rank] = json.load(f)
    return figures


def estimate(cfg_path, options):
    """The plan's per-rank peak (bytes) for the same config on 2 processes."""
    # defer: the parent imports lavis only when it estimates
    from lavis.common.config import Config
    from lavis.tools.memory_plan import plan_memory

    cfg = Config(argparse.Namespace(cfg_path=cfg_path, options=list(options)))
    return plan_memory(cfg, NPROC, 1e6).peak


def check(variants, micro_batches, folder):
    """[(variant, rank, estimate, measured, figures)] for every variant and rank."""
    cfg_path = write_config(folder, micro_batches)
    results = []
    for name in variants:
        options = VARIANTS[name]
        measured = run_variant(cfg_path, name, options, folder)
        planned = estimate(cfg_path, options)
        for rank, fig in sorted(measured.items()):
            results.append((name, rank, planned, fig["peak"] - fig["baseline"], fig))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--micro-batches", type=int, default=4, help="micro-batches per rank (default 4)")
    parser.add_argument("--dir", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.measure:
        return measure(rest)
    folder = args.dir or tempfile.mkdtemp(prefix="memory_plan_check_")
    llm = "LLM hidden {hidden_size}, {num_layers} layers, MLP {intermediate_size}".format(**LLM)
    print(
        f"{NPROC} gloo ranks on CPU, {args.micro_batches} micro-batches of {BATCH} x {SEQ} tokens per rank, "
        f"{llm}, fp32; measured: peak RSS during training - RSS before the model is built"
    )
    print(f"{'variant':13s}{'rank':>5s}{'estimate MiB':>14s}{'measured MiB':>14s}{'est/meas':>10s}{'slack MiB':>11s}")
    worst = 0.0
    for name, rank, planned, measured, fig in check(args.variants, args.micro_batches, folder):
        slack = fig["start"] - fig["baseline"] - fig["live"]
        ratio = planned / measured
        worst = max(worst, abs(ratio - 1))
        print(f"{name:13s}{rank:5d}{planned / MIB:14.0f}{measured / MIB:14.0f}{ratio:10.2f}{slack / MIB:11.0f}")
    print(f"largest difference: {worst:.0%} (limit 25%)")
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
