"""The training loop: data loaders, AdamW, lr schedule, AMP, accumulation, clipping, logs, checkpoints.

Built by `train.py` from the run config (`run.runner: runner_base`).  Writes into
`<run.output_dir>/<job_id>/`: `config.json`, `log.jsonl` (one JSON object per iteration with
loss, lr and the optimizer `step`, `grad_norm` (before clipping) when it steps, plus evaluation
results), `tensorboard/` and `curves.png` (`lavis/common/logger.py`),
`checkpoint_<epoch>[_iter<K>].pth` (see "Exact resume" below; written atomically).  Before the
first step the folder is checked to be writable with room for one checkpoint of the model's
trainable size, and temporary files of an interrupted write left there are removed; a write that
runs out of space later is one DiskFullError line, the previous checkpoint and log.jsonl intact.

Distributed (launched by torchrun, see `lavis/common/dist_utils.py`): the model is wrapped in
DistributedDataParallel, or sharded with FSDP2 (`run.strategy`, see `strategies.py`); each rank
reads its own shard of the training set (`samplers.py`: DistributedSampler's order, shuffled per
epoch from `run.seed`, like the single-process loader) in batches of `batch_size_train` per
rank.  Each rank's loss is its own token-level mean; DDP averages gradients over ranks and
accumulation divides each micro-batch loss by `accum_grad_iters`, so an optimizer step uses
the plain mean of the world_size x accum micro-batch gradients, exactly as one process with
`accum_grad_iters` = world_size x accum on the same micro-batches
(`tests/runners/test_distributed.py` checks it).  Non-stepping micro-batches skip the gradient
all-reduce (`no_sync`).  The logged loss is the mean over ranks; only rank 0 writes files,
prints, and evaluates (the others wait at a barrier).

The lr schedule is indexed by global micro-batches (of `batch_size_train` samples): the lr of
an optimizer step is the schedule's value at the last micro-batch it consumes, counted over
all ranks.  With one process this is what LAVIS's per-iteration schedule applies at each step;
it also makes N ranks and `accum_grad_iters: N` the same run, warmup included.

Exact resume (`run.resume_ckpt_path`, or `auto` for the newest checkpoint under
`run.output_dir`): a checkpoint holds the trainable weights, optimizer, AMP scaler, epoch,
micro-batches done in the epoch and every rank's RNG states; the schedule is a function of
(epoch, micro-batch), the data order of (seed, epoch) (`samplers.py`) and augmentation of
(seed, epoch, sample) (`InstructionDataset.set_epoch`).  So a run resumed from any
checkpoint, written at an epoch's end or every `run.save_freq_iters` optimizer steps, trains
the same steps on the same data with the same random draws as the uninterrupted run.  Resuming
a checkpoint of a job folder under `run.output_dir` continues in that folder.
"""

import contextlib
import json
import logging
import os
import time

import torch
from torch.utils.data import ConcatDataset, DataLoader
from tqdm import tqdm

from lavis.common import dist_utils
from lavis.common.checkpoint import (
    CheckpointError,
    check_output_folder,
    checkpoint_bytes,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_file,
    save_file,
)
from lavis.common.config import ConfigError
from lavis.common.dtypes import autocast_dtype_named
from lavis.common.logger import RunLogger, StepMeter, memory_scalars, truncate_log
from lavis.common.registry import registry
from lavis.common.rng import capture_rng_state, restore_rng_state, set_seed
from lavis.common.utils import atomic_open, is_out_of_space, out_of_space, remove_stale_temp_files
from lavis.datasets.cached_features import attach_cached_features
from lavis.datasets.mixture import MixtureDataset, shared_collater
from lavis.runners.compile import compile_llm_layers
from lavis.runners.samplers import ResumableSampler
from lavis.runners.strategies import build_strategy
from lavis.tasks.benchmark_task import benchmark_task_of, evaluate_benchmark, format_table

#: Micro-batches without a single supervised token after which a run stops (every answer cut off)
_NO_LABELS_AFTER = 20


def param_groups(model, weight_decay, lr_scale=None):
    """AdamW groups: no weight decay on biases, norms and other 1-d parameters; and, for
    `lr_scale` {name prefix: factor} (e.g. {"visual_encoder": 3.0, "llm_proj": 10.0}), one group
    per factor, the longest matching prefix deciding (the schedule multiplies each group's lr)."""
    prefixes = sorted((lr_scale or {}).items(), key=lambda item: -len(item[0]))
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = next((factor for prefix, factor in prefixes if name.startswith(prefix)), 1.0)
        decays = not (param.ndim < 2 or name.endswith(".bias") or "norm" in name.lower())
        key = (float(scale), decays)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decays else 0.0, "lr_scale": float(scale)}
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]


@registry.register_runner("runner_base")
class RunnerBase:
    def __init__(self, cfg, task, model, datasets, job_id):
        self.config = cfg
        self.run_cfg = cfg.run_cfg
        self.task = task
        self.datasets = datasets
        attach_cached_features(cfg, model, datasets)  # run.use_cached_features: images -> cached features
        self.job_id = job_id
        self.distributed = dist_utils.is_dist_avail_and_initialized()
        self.device = dist_utils.pick_device(self.run_cfg.device, self.distributed)
        self.model = model.to(self.device)  # the unwrapped model: checkpoints, evaluation
        self.model.pack_sequences = self.run_cfg.packing  # run.packing: see lavis/models/llm/packing.py
        self.amp_dtype = autocast_dtype_named(self.run_cfg.autocast_dtype) if self.run_cfg.amp else None
        compile_llm_layers(self.model, self.run_cfg.compile, self.device)  # run.compile: see lavis/runners/compile.py
        self.train_model = self._wrap(self.model)  # what training steps call (DDP when distributed)
        self.resume_path = self._resume_path(self.run_cfg.resume_ckpt_path)
        self.global_step = 0  # optimizer steps so far (the x axis of benchmark scores in TensorBoard)
        self.output_dir = self._job_dir(job_id)
        if dist_utils.is_main_process():
            remove_stale_temp_files(self.output_dir)  # first: they may hold the space a checkpoint needs
            check_output_folder(self.output_dir, checkpoint_bytes(self.model))
        self.log_path = os.path.join(self.output_dir, "log.jsonl")
        self.run_logger = RunLogger(
            self.output_dir, self.run_cfg, dist_utils.is_main_process(), name=job_id, config=cfg.to_dict()
        )
        self.start_epoch, self.start_iters = 0, 0
        self._lengths = None  # the training samples' length estimates (run.group_by_length)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, self.run_cfg.weight_decay, self.run_cfg.lr_scale),
            lr=self.run_cfg.init_lr,
            betas=tuple(self.run_cfg.betas),
        )
        self.lr_scheduler = registry.get_lr_scheduler_class(self.run_cfg.lr_sched)(
            optimizer=self.optimizer,
            max_epoch=self.run_cfg.max_epoch,
            min_lr=self.run_cfg.min_lr,
            init_lr=self.run_cfg.init_lr,
            warmup_steps=self.run_cfg.warmup_steps,
            warmup_start_lr=self.run_cfg.warmup_lr,
        )
        use_scaler = self.amp_dtype == torch.float16 and self.run_cfg.loss_scale and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def _resume_path(self, setting):
        """`run.resume_ckpt_path`, with `auto` resolved (by rank 0, for all ranks) to the newest
        checkpoint under `run.output_dir`, or None to start afresh."""
        if setting != "auto":
            return setting or None
        path = dist_utils.broadcast_object(
            latest_checkpoint(self.run_cfg.output_dir) if dist_utils.is_main_process() else None
        )
        if path is None:
            logging.info("resume auto: no checkpoint under %s; starting a new run", self.run_cfg.output_dir)
        return path

    def _job_dir(self, job_id):
        """A new job folder, or the resumed checkpoint's own one when it is under output_dir."""
        if self.resume_path:
            folder = os.path.dirname(os.path.abspath(self.resume_path))
            if os.path.dirname(folder) == os.path.abspath(self.run_cfg.output_dir):
                return folder
        return os.path.join(self.run_cfg.output_dir, job_id)

    def _wrap(self, model):
        """The model training steps call: plain, DDP or FSDP2 (`run.strategy`, see strategies.py)."""
        self.strategy = build_strategy(self.run_cfg, self.distributed, self.device, self.amp_dtype)
        return self.strategy.wrap(model)

    # -- data --------------------------------------------------------------------
    def _split(self, split):
        parts = [splits[split] for splits in self.datasets.values() if split in splits]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def _train_set(self):
        """The training splits together: a `sample_ratio` mixture when the datasets give ratios
        (`lavis/datasets/mixture.py`), else their concatenation."""
        cfg = self.run_cfg
        ratios = {name: self.config.datasets_cfg[name].get("sample_ratio") for name in self.datasets}
        if all(r is None for r in ratios.values()):
            if len(cfg.train_splits) == 1:
                return self._split(cfg.train_splits[0])
            return ConcatDataset([self._split(s) for s in cfg.train_splits])
        unset = sorted(name for name, r in ratios.items() if r is None)
        if unset:
            raise ConfigError(f"datasets {unset} have no sample_ratio while others do: give every dataset one")
        names, parts, shares = [], [], []
        for name, splits in self.datasets.items():
            for split in (s for s in cfg.train_splits if s in splits):
                names.append(name if len(cfg.train_splits) == 1 else f"{name}/{split}")
                parts.append(splits[split])
                shares.append(ratios[name])
        return MixtureDataset(parts, shares, names)

    def _loader(self, dataset, batch_size, sampler=None, seed=0):
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.run_cfg.num_workers,
            collate_fn=_collater(dataset),
            generator=torch.Generator().manual_seed(seed),  # workers' base seed
            drop_last=False,
            persistent_workers=False,
        )

    def _train_loader(self, dataset, epoch, start_batch=0):
        """The loader of one training epoch from its `start_batch`-th batch on: this rank's part
        of the (seed, epoch) order (see `samplers.py`), length-grouped with `run.group_by_length`."""
        cfg = self.run_cfg
        for part in _parts(dataset):  # before the lengths: a mixture draws its epoch's rows here
            part.set_epoch(cfg.seed, epoch)
        mixed = isinstance(dataset, MixtureDataset)
        if cfg.group_by_length and (self._lengths is None or mixed):  # estimated once (a mixture: cached per part)
            image_tokens = getattr(self.model, "num_query_token", 32)
            self._lengths = [n for part in _parts(dataset) for n in part.lengths(image_tokens)]
        sampler = ResumableSampler(
            dataset,
            cfg.batch_size_train,
            dist_utils.get_world_size(),
            dist_utils.get_rank(),
            seed=cfg.seed,
            lengths=self._lengths,
        )
        sampler.set_epoch(epoch)
        sampler.set_start_batch(start_batch)
        return self._loader(dataset, cfg.batch_size_train, sampler=sampler, seed=cfg.seed + epoch)

    def _sched_step(self, i):
        """Global micro-batch index of the last micro-batch in the optimizer step of local
        iteration i (see the module docstring)."""
        accum = self.run_cfg.accum_grad_iters
        return ((i // accum) + 1) * accum * dist_utils.get_world_size() - 1

    # -- logging and checkpoints -----------------------------------------------------
    @dist_utils.main_process
    def log(self, record):
        """Append `record` to log.jsonl; a full disk cuts the file back to its last whole line."""
        line = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        needed = len(line)
        # unbuffered: a failed write leaves nothing in a buffer that closing would try to flush
        with open(self.log_path, "ab", buffering=0) as handle:
            size = handle.seek(0, os.SEEK_END)
            try:
                while line:  # a raw write may be short (the disk filling up) before it fails
                    line = line[handle.write(line) :]
            except OSError as err:
                if not is_out_of_space(err):
                    raise
                handle.truncate(size)
                raise out_of_space(self.log_path, needed, "log.jsonl keeps its whole lines") from None

    def save_checkpoint(self, epoch, iters=None):
        """Write `checkpoint_<epoch>.pth` (epoch done) or `checkpoint_<epoch>_iter<iters>.pth`
        (mid-epoch, after an optimizer step).  Every rank takes part (FSDP gathers the shards,
        each rank's RNG states are saved); rank 0 writes, atomically."""
        model_state, optimizer_state = self.strategy.full_state(self.model, self.optimizer)
        rng = dist_utils.all_gather_object(capture_rng_state())
        if not dist_utils.is_main_process():
            return None
        path = os.path.join(self.output_dir, checkpoint_name(epoch, iters))
        save_file(
            {
                "model": model_state,
                "optimizer": optimizer_state,
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "config": self.config.to_dict(),
                "epoch": epoch,
                "iters": iters,
                "rng": rng,
            },
            path,
        )
        logging.info("saved %s", path)
        if self.run_cfg.keep_last_n:
            for stale in list_checkpoints(self.output_dir)[: -self.run_cfg.keep_last_n]:
                os.remove(stale)
        return path

    def resume(self, path):
        """Continue from the checkpoint at `path`; a file whose entries are not what the runner
        writes (or do not fit this run's model and optimizer) is a CheckpointError naming it."""
        checkpoint = load_file(path)
        if not isinstance(checkpoint, dict):
            raise CheckpointError(
                f"cannot resume from {path}: it holds a {type(checkpoint).__name__}, not a checkpoint"
            )
        for key in ("model", "optimizer", "epoch"):
            if key not in checkpoint:
                raise CheckpointError(f"cannot resume from {path}: it has no '{key}' entry")
        epoch, iters, rng = checkpoint["epoch"], checkpoint.get("iters"), checkpoint.get("rng") or []
        for key, value, valid in (
            ("epoch", epoch, isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0),
            ("iters", iters, iters is None or (isinstance(iters, int) and not isinstance(iters, bool) and iters >= 0)),
            ("optimizer", type(checkpoint["optimizer"]).__name__, isinstance(checkpoint["optimizer"], dict)),
            ("rng", type(rng).__name__, isinstance(rng, list)),
        ):
            if not valid:
                raise CheckpointError(
                    f"cannot resume from {path}: its '{key}' entry ({value!r}) is not what a run writes"
                )
        try:
            self.strategy.load_state(self.model, self.optimizer, checkpoint, path)
            if self.scaler is not None and checkpoint.get("scaler"):
                self.scaler.load_state_dict(checkpoint["scaler"])
        except CheckpointError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise CheckpointError(
                f"cannot resume from {path}: its optimizer state does not fit this run ({type(err).__name__}: "
                f"{' '.join(str(err).split())[:200]})"
            ) from None
        if iters is None:  # written at the end of its epoch
            self.start_epoch, self.start_iters = epoch + 1, 0
        else:
            self.start_epoch, self.start_iters = epoch, iters
        if len(rng) == dist_utils.get_world_size():
            try:
                restore_rng_state(rng[dist_utils.get_rank()])
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
                raise CheckpointError(f"cannot resume from {path}: its RNG state cannot be restored ({err})") from None
        else:
            logging.warning(
                "%s holds RNG states of %d rank(s), this run has %d: resuming with fresh random states "
                "(dropout and sampling draws will differ from the interrupted run)",
                path,
                len(rng),
                dist_utils.get_world_size(),
            )
        if dist_utils.is_main_process():
            truncate_log(self.log_path, self.start_epoch, self.start_iters)
        logging.info("resumed from %s: continuing at epoch %d, iteration %d", path, self.start_epoch, self.start_iters)

    # -- training ---------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, samples):
        if samples["image"] is not None:
            samples["image"] = samples["image"].to(self.device, non_blocking=True)
        return samples

    def train_epoch(self, epoch, loader, start_iter=0):
        """Train the epoch's micro-batches from `start_iter` on (a resumed epoch skips the ones
        done); returns the mean loss of those trained here."""
        cfg = self.run_cfg
        self.train_model.train()
        accum = cfg.accum_grad_iters
        total = start_iter + len(loader)
        progress = tqdm(
            enumerate(loader, start=start_iter),
            desc=f"epoch {epoch}",
            total=total,
            initial=start_iter,
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not dist_utils.is_main_process(),
        )
        losses, meter, steps_per_epoch = [], StepMeter(), -(-total // accum)
        supervised = 0  # labelled tokens so far this epoch (all ranks)
        for i, samples in progress:
            self.lr_scheduler.step(cur_epoch=epoch, cur_step=self._sched_step(i))
            samples = self._to_device(samples)
            steps = (i + 1) % accum == 0 or i + 1 == total
            # micro-batches that do not step keep their gradients local (no all-reduce)
            sync = contextlib.nullcontext() if steps else self.strategy.no_sync(self.train_model)
            with sync:
                with self._autocast():
                    loss, extras = self.task.train_step(self.train_model, samples)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at epoch {epoch} iteration {i} (samples {samples['index']})"
                    )
                scaled = loss / accum
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if steps:
                if self.scaler:
                    self.scaler.unscale_(self.optimizer)
                params = [p for group in self.optimizer.param_groups for p in group["params"]]
                if cfg.grad_norm_clip:  # the norm before clipping, either way
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_norm_clip).item()
                else:
                    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]).item()
                if self.scaler:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            lr = self.optimizer.param_groups[0]["lr"]
            counted = "num_tokens" in extras  # before the distributed branch drops the per-rank counts
            counts = [extras.get("num_tokens", 0), extras.get("num_padded_tokens", 0)]
            if self.distributed:  # the mean over ranks, the loss whose gradient the step uses
                value, *counts = dist_utils.all_reduce_mean([loss.item(), *counts])
                counts = [round(c * dist_utils.get_world_size()) for c in counts]  # all ranks' tokens
                extras = {k: v for k, v in extras.items() if not k.startswith("num_")}  # counts are per rank
            else:
                value = loss.item()
            losses.append(value)
            meter.add(value, *counts)
            supervised += counts[0]
            if counted and supervised == 0 and i - start_iter + 1 == min(_NO_LABELS_AFTER, len(loader)):
                raise ConfigError(
                    f"no supervised token in the first {i - start_iter + 1} micro-batches: every answer was cut "
                    f"off by model.max_txt_len = {self.config.model_cfg.max_txt_len} tokens (or the answers are "
                    "empty); raise model.max_txt_len"
                )
            step = epoch * steps_per_epoch + i // accum + 1  # optimizer steps so far, this one included
            self.global_step = step
            grad = {"grad_norm": round(grad_norm, 6)} if steps else {}
            self.log({"epoch": epoch, "iter": i, "step": step, "loss": round(value, 6), "lr": lr, **grad, **extras})
            if steps:
                self.run_logger.scalars(
                    step, {**meter.pop(), "train/lr": lr, "train/grad_norm": grad_norm, **memory_scalars(self.device)}
                )
            if i % max(1, cfg.log_freq) == 0 or i + 1 == total:
                progress.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
            # after the step's log line: a checkpoint never holds a step its log lacks
            if steps and cfg.save_freq_iters and i + 1 < total and ((i + 1) // accum) % cfg.save_freq_iters == 0:
                self.save_checkpoint(epoch, iters=i + 1)
        return sum(losses) / max(len(losses), 1)

    def evaluate(self, split):
        """Exact-match accuracy on `split`, computed by rank 0 alone (others get None)."""
        if not dist_utils.is_main_process():
            return None
        dataset = self._split(split)
        if dataset is None:
            raise ConfigError(f"run.valid_splits/test_splits name split '{split}' but no dataset has it")
        self.model.eval()
        loader = self._loader(dataset, self.run_cfg.batch_size_eval)
        with self._autocast():
            result = self.task.evaluation(self.model, loader, max_new_tokens=self.run_cfg.max_new_tokens)
        self.log({"eval_split": split, **result})
        groups = "  ".join(f"{g}: {acc:.1%}" for g, acc in result["by_group"].items())
        print(f"[{split}] held-out exact-match accuracy: {result['accuracy']:.1%} of {result['total']}  ({groups})")
        return result

    def _benchmarks(self):
        """{name in run.valid_splits: its benchmark task} for the benchmark datasets the run names
        there (scored at each epoch's end; other names are held-out splits, scored at the end)."""
        found = {}
        for name in self.run_cfg.valid_splits:
            task = benchmark_task_of(name, self.run_cfg) if name in self.datasets else None
            if task is not None:
                found[name] = task
        return found

    def evaluate_benchmarks(self, epoch, steps):
        """Score each benchmark of `run.valid_splits` (rank 0 alone), into the JSON log, TensorBoard
        and `<job>/benchmarks/<name>/epoch_<N>/`."""
        if not dist_utils.is_main_process():
            return {}
        self.model.eval()
        results = {}
        for name, task in self._benchmarks().items():
            folder = os.path.join(self.output_dir, "benchmarks", name, f"epoch_{epoch}")
            with self._autocast():
                scores = evaluate_benchmark(
                    task,
                    self.model,
                    self.datasets[name]["test"],
                    folder,
                    batch_size=self.run_cfg.batch_size_eval,
                    max_new_tokens=self.run_cfg.max_new_tokens,
                    num_beams=self.run_cfg.num_beams,
                    rank=0,
                    world_size=1,
                )
            headline = dict(task.headline(scores))
            self.log({"epoch": epoch, "benchmark": name, **headline})
            self.run_logger.scalars(steps, {f"eval/{name}/{metric}": value for metric, value in headline.items()})
            print(f"[{name}] epoch {epoch}: " + format_table(task, scores))
            results[f"{name}/epoch_{epoch}"] = scores
        self.model.train()
        return results

    def train(self):
        """Train (unless `run.evaluate`) and evaluate; the run's logs are closed and curves.png
        drawn at the end, also when training stops on an error."""
        try:
            results = self._train_and_evaluate()
        finally:
            self.run_logger.close()
        dist_utils.barrier()  # rank 0 has written its last files: all ranks leave together
        return results

    def _train_and_evaluate(self):
        cfg = self.run_cfg
        set_seed(cfg.seed + dist_utils.get_rank())  # per-rank dropout/augmentation; data order comes from the sampler
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if dist_utils.is_main_process():
            text = self.config.pretty_print()
            needed = len(text.encode("utf-8"))
            with atomic_open(os.path.join(self.output_dir, "config.json"), "w", needed, encoding="utf-8") as handle:
                handle.write(text)
        if self.resume_path:
            self.resume(self.resume_path)
        results = {}
        if not cfg.evaluate:
            absent = [split for split in cfg.train_splits if self._split(split) is None]
            if absent or not cfg.train_splits:
                have = sorted({split for splits in self.datasets.values() for split in splits})
                splits = list(cfg.train_splits)
                raise ConfigError(f"run.train_splits {splits}: no dataset has {absent}; they have {have}")
            train_set = self._train_set()
            start = time.time()
            for epoch in range(self.start_epoch, cfg.max_epoch):
                start_iter = self.start_iters if epoch == self.start_epoch else 0
                mean_loss = self.train_epoch(epoch, self._train_loader(train_set, epoch, start_iter), start_iter)
                self.save_checkpoint(epoch)
                if dist_utils.is_main_process():
                    print(f"epoch {epoch}: mean loss {mean_loss:.4f} ({time.time() - start:.0f}s elapsed)")
                if self._benchmarks():
                    with self.strategy.full_weights(self.model):  # rank 0 evaluates alone
                        results.update(self.evaluate_benchmarks(epoch, steps=self.global_step))
                    dist_utils.barrier()
        with self.strategy.full_weights(self.model):  # rank 0 evaluates alone
            for split in list(cfg.valid_splits) + list(cfg.test_splits):
                if split not in self._benchmarks():
                    results[split] = self.evaluate(split)
        dist_utils.barrier()  # the other ranks wait while rank 0 saves and evaluates
        return results


def _parts(dataset):
    """The datasets inside a (possibly concatenated) training set."""
    return list(dataset.datasets) if isinstance(dataset, ConcatDataset) else [dataset]


def _collater(dataset):
    """The dataset's own `collater` (as in LAVIS); the parts of a concatenation must share one."""
    return shared_collater(_parts(dataset))
