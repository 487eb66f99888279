"""Distributed (DDP) helpers: set up from torchrun's environment, or stay a single process.

`python -m torch.distributed.run --nproc_per_node=N train.py ...` (or torchrun with `--nnodes`
and `--rdzv_endpoint` on several machines) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT in every worker's environment; `init_distributed_mode` reads them and starts the
process group: NCCL when training on CUDA (each process on GPU LOCAL_RANK), gloo on CPU.  Without
those variables (plain `python train.py`), or with `run.distributed=False`, nothing is started
and every helper answers as for one process (rank 0 of 1, main process, barrier a no-op).
"""

import datetime
import functools
import logging
import os

import torch
import torch.distributed as dist

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun():
    return all(name in os.environ for name in TORCHRUN_VARS)


def is_dist_avail_and_initialized():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def get_world_size():
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_local_rank():
    return int(os.environ.get("LOCAL_RANK", 0)) if is_dist_avail_and_initialized() else 0


def is_main_process():
    return get_rank() == 0


def main_process(func):
    """Run `func` on rank 0 only (other ranks get None); for writing files and printing."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if is_main_process():
            return func(*args, **kwargs)
        return None

    return wrapper


def pick_device(name, distributed=False):
    """`run.device` as a torch device: CUDA falls back to the CPU (with a warning) where there is
    none, and each process of a distributed run takes its local rank's GPU."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        logging.warning("run.device=%s but no CUDA device is available: running on CPU", name)
        return torch.device("cpu")
    if name.startswith("cuda") and distributed:
        return torch.device("cuda", get_local_rank())  # one GPU per process
    return torch.device(name)


def barrier():
    if is_dist_avail_and_initialized():
        dist.barrier()


def init_distributed_mode(run_cfg):
    """Start the process group when launched by torchrun; return True when running distributed.

    `run.distributed` (default True): DDP exactly when torchrun's variables are present, as in
    LAVIS; False: always one process.  `run.dist_url` is the init method ("env://":
    MASTER_ADDR/MASTER_PORT from torchrun); `run.dist_timeout_s` bounds every collective, so a
    rank stuck waiting for a dead peer stops instead of hanging forever.  With
    `run.fsdp_cpu_offload` on CUDA the group is `cpu:gloo,cuda:nccl`: the offloaded shards are CPU
    tensors, and what runs collectives on them (the gradient norm, checkpoint gathers) needs gloo.
    """
    if not run_cfg.get("distributed", True) or not launched_by_torchrun():
        return False
    if is_dist_avail_and_initialized():
        return True
    use_cuda = str(run_cfg.get("device", "cuda")).startswith("cuda") and torch.cuda.is_available()
    backend = "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "cpu:gloo,cuda:nccl" if run_cfg.get("fsdp_cpu_offload", False) else "nccl"
    dist.init_process_group(
        backend=backend,
        init_method=run_cfg.get("dist_url", "env://") or "env://",
        timeout=datetime.timedelta(seconds=float(run_cfg.get("dist_timeout_s", 1800))),
    )
    return True


def destroy_process_group():
    """Leave the process group (at exit, after success or failure); a no-op when single-process."""
    if is_dist_avail_and_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values):
    """The mean over ranks of a list of floats (the same list back when single-process)."""
    if not is_dist_avail_and_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return (tensor / dist.get_world_size()).tolist()


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (`obj` itself when single-process)."""
    if not is_dist_avail_and_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather_object(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] when single-process)."""
    if not is_dist_avail_and_initialized():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
