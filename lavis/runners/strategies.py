"""How the training processes hold the model: `run.strategy: ddp` (replicas) or `fsdp` (shards).

The runner (`runner_base.py`) asks its strategy to wrap the model, to skip the gradient
exchange on accumulating micro-batches, to gather full checkpoints and to load them back; the
rest of the loop is the same for both.

* `ddp` (default): one process keeps the plain model; under torchrun every rank holds a full
  replica inside DistributedDataParallel, gradients are all-reduced (`no_sync` while
  accumulating), and rank 0's own tensors are the checkpoint.
* `fsdp`: PyTorch FSDP2 (`fully_shard`) for runs that train the LLM (LoRA or `freeze_llm:
  False`).  Every LLM decoder layer is one unit, so are the ViT and Q-former layers when they
  train; the root unit holds the rest (embeddings, LM head, projection, frozen image side).
  Each rank stores 1/world_size of every parameter, gradient and Adam moment; a unit's full
  weights exist only while it runs.  FSDP2 shards parameter by parameter, so one unit may mix
  frozen weights and trainable LoRA adapters (frozen ones get no gradient and no
  reduce-scatter).  Gradients are averaged over ranks like DDP's, so in fp32 the loss curve
  equals the DDP run's (tests/runners/test_fsdp.py).  Mixed precision: with `run.amp` on CUDA
  the units compute in `run.autocast_dtype` and reduce gradients in fp32 (sums over ranks in
  bf16 lose digits); on CPU everything stays fp32.  Checkpoints are full, unsharded trainable
  state dicts (every rank takes part in the gather, rank 0 writes), so chat loads them in one
  process; the optimizer state is saved full too (keyed by parameter name, so it is tied to no
  world size; tested with the same one) and either strategy resumes from either's checkpoint.
  Works on CPU (gloo, tested) as well as NCCL.  While accumulating (`accum_grad_iters` > 1)
  every micro-batch reduce-scatters its gradients into the sharded ones, so gradients stay at
  1/N per rank; skipping the exchange (FSDP2's `set_requires_gradient_sync(False)`, DDP's
  `no_sync` analogue) would keep every unit's full gradient per rank until the stepping
  micro-batch: 28.8 GiB for Qwen-7B in fp32, more than the communication saved is worth.
* `fsdp` with `run.fsdp_cpu_offload: True`: FSDP2's `CPUOffloadPolicy` on every unit.  The
  parameter and gradient shards live in host memory (pinned on CUDA), each unit's shards are
  copied to the GPU for its all-gather and its reduced gradient shard back, and AdamW steps
  on the CPU with its moments there: the GPU keeps only the gathered units, activations and
  logits, at the price of host-device copies and a CPU optimizer step.  On CUDA the process
  group is then `cpu:gloo,cuda:nccl` (lavis/common/dist_utils.py), as collectives on the
  offloaded tensors (gradient norm, checkpoint gathers) need a CPU backend.  The runner still
  puts the whole model on the device before sharding, so the GPU must hold it once at start.
  On a CPU device the policy is passed all the same and changes nothing (one log line says
  so; the losses equal the run without it, tests/runners/test_fsdp.py).  With `ddp` the key is
  a config error.  `python -m lavis.tools.memory_plan` estimates what each choice needs per GPU.
"""

import contextlib
import logging

import torch
from torch.nn.parallel import DistributedDataParallel

from lavis.common.checkpoint import CheckpointError


def build_strategy(run_cfg, distributed, device, amp_dtype):
    """The strategy `run.strategy` names; one process (no torchrun) always keeps the plain model."""
    name = run_cfg.get("strategy", "ddp")  # checked against RunConfig.VALID by lavis/common/config.py
    offload = bool(run_cfg.get("fsdp_cpu_offload", False))  # only with fsdp (lavis/common/config.py)
    if name == "fsdp" and distributed:
        return Sharded(device, amp_dtype, cpu_offload=offload)
    if name == "fsdp":
        logging.info(
            "run.strategy=fsdp in a single process: nothing to shard, training the plain model%s",
            " (run.fsdp_cpu_offload does not apply)" if offload else "",
        )
    return Replicated(device, distributed)


def param_names(model, optimizer):
    """Parameter names in the optimizer's order (the index `optimizer.state_dict()` keys by)."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def keyed_by_name(optim, names):
    """An optimizer state keyed by index (ddp checkpoints) -> keyed by parameter name (fsdp's)."""
    if not any(isinstance(k, int) for k in optim.get("state", {})) and not any(
        isinstance(i, int) for g in optim["param_groups"] for i in g["params"]
    ):
        return optim
    return {
        "state": {names[i]: value for i, value in optim["state"].items()},
        "param_groups": [dict(g, params=[names[i] for i in g["params"]]) for g in optim["param_groups"]],
    }


def keyed_by_index(optim, names):
    """The inverse of `keyed_by_name`: an fsdp checkpoint's optimizer state resumes under ddp."""
    if not any(isinstance(i, str) for g in optim["param_groups"] for i in g["params"]):
        return optim
    index = {name: i for i, name in enumerate(names)}
    return {
        "state": {index[name]: value for name, value in optim["state"].items()},
        "param_groups": [dict(g, params=[index[n] for n in g["params"]]) for g in optim["param_groups"]],
    }


class Replicated:
    """One process, or DDP: every rank holds the whole model."""

    def __init__(self, device, distributed):
        self.device, self.distributed = device, distributed

    def wrap(self, model):
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Frozen parameters (requires_grad=False) are ignored by DDP; every trainable one gets a
        # gradient in each forward, so no find_unused_parameters (and its extra graph walk).
        return DistributedDataParallel(model, device_ids=device_ids)

    def no_sync(self, train_model):
        """Keep this micro-batch's gradients local (no all-reduce)."""
        return train_model.no_sync() if self.distributed else contextlib.nullcontext()

    def full_state(self, model, optimizer):
        """(trainable model state, optimizer state) for the checkpoint; called on every rank."""
        return model.trainable_state_dict(), optimizer.state_dict()

    def load_state(self, model, optimizer, checkpoint, source):
        model.load_checkpoint(checkpoint, source)
        optimizer.load_state_dict(keyed_by_index(checkpoint["optimizer"], param_names(model, optimizer)))
        for group in optimizer.param_groups:  # load_state_dict checks the groups, not the moments' shapes
            for param in group["params"]:
                bad = [
                    k
                    for k, v in optimizer.state.get(param, {}).items()
                    if not isinstance(v, torch.Tensor) or (v.dim() and v.shape != param.shape)
                ]
                if bad:
                    raise CheckpointError(
                        f"{source}: its optimizer state {bad} does not fit a parameter of shape {tuple(param.shape)}"
                    )

    def full_weights(self, model):
        """Context in which rank 0 alone may run `model` (evaluation); entered by every rank."""
        return contextlib.nullcontext()


class Sharded:
    """FSDP2: parameters, gradients and optimizer state sharded over the ranks."""

    def __init__(self, device, amp_dtype, cpu_offload=False):
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy

        self.device, self.cpu_offload = device, cpu_offload
        if amp_dtype is not None and device.type == "cuda":
            self.mp_policy = MixedPrecisionPolicy(param_dtype=amp_dtype, reduce_dtype=torch.float32)
        else:
            self.mp_policy = MixedPrecisionPolicy()  # fp32 on CPU (and without run.amp)
        # run.fsdp_cpu_offload: shards and the optimizer step on the CPU; pinned host memory only
        # where there is a device to copy from (pinning needs CUDA)
        self.offload_policy = CPUOffloadPolicy(pin_memory=device.type == "cuda") if cpu_offload else OffloadPolicy()
        if cpu_offload and device.type == "cpu":
            logging.info("run.fsdp_cpu_offload on a CPU device: the shards are in host memory already, nothing moves")

    @staticmethod
    def units(model):
        """The blocks sharded one by one: the LLM's decoder layers always, the ViT's and the
        Q-former's layers when any of their parameters trains (frozen ones stay in the root unit)."""
        blocks = []
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "layer"):
                trains = any(p.requires_grad for p in module.parameters())
                if name.startswith("llm_model.") or trains:
                    blocks.extend(module)
        return blocks

    def wrap(self, model):
        from torch.distributed import get_world_size
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(self.device.type, (get_world_size(),))
        units = self.units(model)
        policies = dict(mesh=mesh, mp_policy=self.mp_policy, offload_policy=self.offload_policy)
        for block in units:
            fully_shard(block, **policies)
        fully_shard(model, **policies)  # in place: `model` is now the root unit
        offloaded = ", shards and optimizer step on the CPU" if self.cpu_offload else ""
        logging.info("FSDP2: %d units + root over %d ranks%s", len(units), get_world_size(), offloaded)
        return model

    def _fsdp_modules(self, model):
        from torch.distributed.fsdp import FSDPModule

        return [m for m in model.modules() if isinstance(m, FSDPModule)]

    def no_sync(self, train_model):
        """Nothing is skipped: each micro-batch reduce-scatters into the sharded gradients (see above)."""
        return contextlib.nullcontext()

    @staticmethod
    def _options(**kwargs):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, **kwargs)

    def full_state(self, model, optimizer):
        """Gathered full tensors on rank 0 (CPU); the other ranks take part and get ({}, {})."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        state = get_model_state_dict(model, options=self._options(cpu_offload=True, ignore_frozen_params=True))
        optim = get_optimizer_state_dict(model, optimizer, options=self._options(cpu_offload=True))
        return {k: v for k, v in state.items() if k in trainable}, optim

    def load_state(self, model, optimizer, checkpoint, source):
        """Every rank reads the full checkpoint and keeps its own shards."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        state = model.checked_state(checkpoint, source)
        set_model_state_dict(model, state, options=self._options(strict=False))
        optim = keyed_by_name(checkpoint["optimizer"], param_names(model, optimizer))
        set_optimizer_state_dict(model, optimizer, optim, options=self._options())

    @contextlib.contextmanager
    def full_weights(self, model):
        """Every rank all-gathers every unit and keeps it gathered (no reshard after forward), so
        rank 0 can generate on its own, outside the root's forward; then all drop the copies."""
        modules = self._fsdp_modules(model)
        for module in modules:
            module.set_reshard_after_forward(False, recurse=False)
            module.unshard()
        try:
            yield
        finally:
            for module in modules:
                module.reshard()
                module.set_reshard_after_forward(module is not model, recurse=False)
