"""Step 1 of the flow: find a checkpoint, rebuild its model and hold it ready to chat.

:func:`load_chat_model` finds a checkpoint (by default the tiny default's latest, written by
`python train.py`), rebuilds the model from the checkpoint's own `config["model"]` section and
loads the weights and the eval image processor into a :class:`ChatModel`, which also owns the
one long-lived generation thread that :class:`~lavis.chat.streaming.Reply` submits to.
"""

import atexit
import contextlib
import dataclasses
import logging
import os
import queue
import threading
from typing import Optional

import torch
from omegaconf import OmegaConf

from lavis.chat.errors import ChatError, one_line
from lavis.chat.settings import MAX_WINDOW_SIZE, GenerationSettings
from lavis.common.checkpoint import CheckpointError, latest_epoch_checkpoint, load_file, not_a_checkpoint_file
from lavis.common.config import build_model_config, drop_unused_keys, load_preprocess_config
from lavis.common.errors import MissingFilesError, UserError
from lavis.common.registry import registry
from lavis.common.schema import ModelConfig
from lavis.models import load_preprocess

REPO_ROOT = registry.get_path("repo_root")
#: Where `python train.py` (the tiny default) writes its jobs, relative to the repo root.
TINY_OUTPUT_DIR = os.path.join("output", "instruction_tuning", "tiny")
#: Model type used for a checkpoint that carries no config (e.g. the original's released one).
DEFAULT_MODEL_TYPE = "qwen7b_chat"


def find_latest_checkpoint(output_dir=None):
    """The highest-epoch `checkpoint_<epoch>.pth` of the newest job folder that has one.

    `output_dir` defaults to the tiny default's `output/instruction_tuning/tiny` under the
    repo root.  Job folders are named by their start time (`%Y%m%d%H%M%S`), so the newest
    sorts last; a newest folder without checkpoints yet (a run still in its first epoch, or
    one that stopped early) is passed over for the next one.
    """
    output_dir = output_dir or os.path.join(REPO_ROOT, TINY_OUTPUT_DIR)
    hint = "train one first with `python train.py`, or pass a checkpoint path"
    if not os.path.isdir(output_dir):
        raise ChatError(f"no checkpoint found: {output_dir} does not exist; {hint}")
    found = latest_epoch_checkpoint(output_dir)  # epoch-end only: not a run's mid-epoch checkpoints
    if found is not None:
        return found
    raise ChatError(f"no checkpoint found in {output_dir}; {hint}")


def default_settings(positions):
    """The chat's settings for an LLM of `positions` positions: greedy, as the original demo; window
    6144 for Qwen-7B-Chat (3/4 of its 8192 positions)."""
    return GenerationSettings(
        max_new_tokens=min(512, max(1, positions // 4)),
        max_window_size=min(MAX_WINDOW_SIZE, positions * 3 // 4),
    )


@dataclasses.dataclass
class ChatModel:
    """A model ready to chat: the model, its eval image processor and where it came from."""

    model: torch.nn.Module
    vis_processor: object
    checkpoint: Optional[str]
    model_type: str
    device: torch.device
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    # held while generating, on the generation thread or a caller's (Reply.run): one at a time
    generation_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    _worker: Optional["_GenerationThread"] = dataclasses.field(default=None, init=False, repr=False)

    @property
    def tokenizer(self):
        return self.model.llm_tokenizer

    @property
    def max_position_embeddings(self):
        return int(self.model.llm_model.config.max_position_embeddings)

    def default_settings(self):
        return default_settings(self.max_position_embeddings)

    def autocast(self):
        """bf16/fp16 autocast on GPUs as the model config asks; full precision on CPU."""
        if self.device.type == "cpu":
            return contextlib.nullcontext()
        return self.model.maybe_autocast()

    def process_image(self, image):
        return self.vis_processor(image)

    @torch.no_grad()
    def image_features(self, conversation, count):
        """Q-former outputs of the conversation's first `count` images, (count, queries, hidden),
        or None: the ViT and Q-former run once per image (on the generating thread, at its first
        answer) and the result stays in `conversation.features` for later turns."""
        if not count:
            return None
        done = 0 if conversation.features is None else len(conversation.features)
        if done < count:
            new = self.model.encode_queries(torch.stack(conversation.images[done:count]).to(self.device))
            conversation.features = new if conversation.features is None else torch.cat([conversation.features, new])
        return conversation.features if len(conversation.features) == count else conversation.features[:count]

    def submit(self, job):
        """Run `job` on this model's generation thread (one long-lived thread: a fresh thread
        per answer would pay torch's per-thread warm-up, tens of ms, on every answer)."""
        with self.lock:
            if self._worker is None:
                self._worker = _GenerationThread()
        self._worker.jobs.put(job)


class _GenerationThread:
    """A daemon thread running submitted jobs one after another, stopped and joined at exit.

    Joining it before the interpreter shuts down matters: a thread still alive when the C++
    runtime tears down (torch's per-thread state included) can abort the process with
    "terminate called without an active exception" after a perfectly good run.
    """

    STOP_WAIT_S = 10.0  # at exit, how long a job still running (e.g. a cancelled reply) may take

    def __init__(self):
        self.jobs = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="chat-generate", daemon=True)
        self.thread.start()
        atexit.register(self.stop)

    def _run(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # jobs report their own errors; the thread must live on
                logging.exception("chat generation job failed")
            del job  # hold no reply (and its tensors) while waiting

    def stop(self):
        self.jobs.put(None)
        self.thread.join(self.STOP_WAIT_S)


def _default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_chat_model(checkpoint_path=None, model_type=None, device=None, cfg_options=None, output_dir=None):
    """Build the model a checkpoint was trained as and load the checkpoint into it.

    `checkpoint_path` None: the tiny default's latest checkpoint (:func:`find_latest_checkpoint`).
    The model config is the checkpoint's `config["model"]` when it has one (the runner saves
    the whole run config), else the default config of `model_type` (default `qwen7b_chat`).
    `cfg_options` overrides config keys.  Every failure is a :class:`ChatError` with a
    one-line message (missing checkpoint, unreadable file, missing real weights...).
    """
    if checkpoint_path is None:
        checkpoint_path = find_latest_checkpoint(output_dir)
    checkpoint_path = os.path.expanduser(os.fspath(checkpoint_path))
    if not os.path.isfile(checkpoint_path):
        raise ChatError(not_a_checkpoint_file(checkpoint_path))
    try:
        state = load_file(checkpoint_path)
    except CheckpointError as err:
        raise ChatError(one_line(err)) from None
    if not isinstance(state, dict):
        raise ChatError(f"{checkpoint_path} is not a checkpoint (expected a dict of tensors)")
    saved = state.get("config") if isinstance(state.get("config"), dict) else None
    saved_model = saved.get("model") if saved and isinstance(saved.get("model"), dict) else None
    if saved_model:  # keys this version does not know (e.g. an original LAVIS run's) are left out
        saved_model = OmegaConf.to_container(drop_unused_keys("model", saved_model))
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(saved_model) - known)
        if unknown:
            logging.warning("%s: ignoring model config keys %s", checkpoint_path, unknown)
        saved_model = {k: v for k, v in saved_model.items() if k in known}
    options = {"load_finetuned": False, **dict(cfg_options or {})}
    try:
        if saved_model:
            saved_type = saved_model.get("model_type")
            if model_type and saved_type and model_type != saved_type:
                raise ChatError(
                    f"{checkpoint_path} was trained as model_type '{saved_type}', not '{model_type}' "
                    "(leave --model-type out to use the checkpoint's own)"
                )
            cfg = build_model_config(OmegaConf.create(saved_model), OmegaConf.create(options))
        else:
            user = {"arch": "minigpt4qwen", "model_type": model_type or DEFAULT_MODEL_TYPE}
            cfg = build_model_config(OmegaConf.create(user), OmegaConf.create(options))
        model = registry.get_model_class(cfg.arch).from_config(cfg)
        model.load_checkpoint(state, checkpoint_path)
        vis_processors, _ = load_preprocess(load_preprocess_config(cfg))
    except (MissingFilesError, CheckpointError) as err:  # these name their files themselves
        raise ChatError(one_line(err)) from None
    except (UserError, NotImplementedError, FileNotFoundError, ValueError, KeyError) as err:
        raise ChatError(f"cannot build the model for {checkpoint_path}: {one_line(err)}") from None
    if "eval" not in vis_processors:
        raise ChatError(f"the config of {checkpoint_path} has no eval image processor")
    device = torch.device(device) if device is not None else _default_device()
    model = model.eval().to(device)
    return ChatModel(model, vis_processors["eval"], checkpoint_path, cfg.model_type, device)
