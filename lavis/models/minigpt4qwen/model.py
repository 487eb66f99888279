"""MiniGPT4Qwen: frozen EVA-ViT -> frozen Q-former -> trainable `llm_proj` -> Qwen chat LLM.

`<ImageHere>` in a user turn becomes `num_query_token` `<|extra_0|>` slots whose embeddings
are replaced by the projected Q-former outputs of that image (images are consumed in the
order their placeholders appear, sample by sample).  Prompts and labels come from
`lavis/processors/chat_format.py`; the loss is computed only at positions that have a label.
Each part is built (and its original file loaded) by its own sub-package: `vision`, `qformer`,
`llm`; the original's whole-model checkpoints load through `checkpoint_keys.py`.
"""

import contextlib
import logging
import os

import torch
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList

from lavis.common.checkpoint import CheckpointError, latest_epoch_checkpoint
from lavis.common.dtypes import autocast_dtype_named
from lavis.common.generation import check_generate_kwargs
from lavis.common.registry import registry
from lavis.common.utils import resolve_path
from lavis.models.base_model import BaseModel
from lavis.models.llm.head_loss import CHUNK_ELEMENTS, head_logits, head_loss
from lavis.models.llm.hf_llm import build_language_model
from lavis.models.llm.llm_tokenizer import load_llm_tokenizer
from lavis.models.llm.packing import pack_rows, packed_batch
from lavis.models.minigpt4qwen import checkpoint_keys
from lavis.models.minigpt4qwen.required_files import check_weight_files, missing_weight_files
from lavis.models.qformer.blip2_qformer import query_features
from lavis.models.qformer.blip2_weights import build_qformer_for
from lavis.models.vision.eva_vit import vit_features
from lavis.models.vision.eva_vit_weights import build_vision_encoder
from lavis.processors.chat_format import IGNORE_INDEX, IMAGE_TOKEN
from lavis.processors.chat_template import build_prompt_builder

#: Ready model types for popular instruct LLMs: the Qwen-7B-Chat recipe (EVA-ViT-G + BLIP-2
#: Q-former) with the LLM from `cache/<folder>` (the hub folder as downloaded, transformers format)
LLM_PRESETS = {
    "qwen2_5_7b_instruct": "ckpt/Qwen2.5-7B-Instruct",
    "qwen3_8b": "ckpt/Qwen3-8B",
    "llama3_1_8b_instruct": "ckpt/Llama-3.1-8B-Instruct",
    "gemma2_9b_it": "ckpt/gemma-2-9b-it",
    "glm4_9b_chat": "ckpt/glm-4-9b-chat-hf",
    "mistral_7b_instruct": "ckpt/Mistral-7B-Instruct-v0.3",
    "phi3_5_mini_instruct": "ckpt/Phi-3.5-mini-instruct",
}


def finetuned_checkpoint(path):
    """`model.finetuned`: a checkpoint file, or a run's output folder (its newest job's newest
    epoch-end checkpoint; a job folder itself works too): how stage 2 names stage 1's weights."""
    if not os.path.isdir(path):
        return path
    found = latest_epoch_checkpoint(path)
    if found is None:
        raise CheckpointError(f"model.finetuned: no epoch-end checkpoint_<epoch>.pth under {path}")
    return found


def default_lora_targets(llm):
    """The LLM family's attention projections: q_proj and v_proj where it has them (as the
    original), else the fused qkv_proj (Phi-3/4)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in llm.named_modules()}
    for targets in (["q_proj", "v_proj"], ["qkv_proj"]):
        if set(targets) <= names:
            return targets
    raise ValueError(f"no known attention projection in {type(llm).__name__}: set model.lora_target_modules")


@registry.register_model("minigpt4qwen")
class MiniGPT4Qwen(BaseModel):
    PRETRAINED_MODEL_CONFIG_DICT = {
        "qwen7b_chat": "configs/models/minigpt4qwen/minigpt4qwen.yaml",
        "tiny": "configs/models/minigpt4qwen/minigpt4qwen_tiny.yaml",
        "tiny_llama": "configs/models/minigpt4qwen/minigpt4qwen_tiny_llama.yaml",
        **{name: "configs/models/minigpt4qwen/minigpt4qwen.yaml" for name in LLM_PRESETS},
    }

    @classmethod
    def default_config(cls, model_type, load_yaml):
        """The model type's YAML; for the chat-LLM presets, Qwen-7B-Chat's with their LLM folder."""
        config = super().default_config(model_type, load_yaml)
        if model_type in LLM_PRESETS:
            config.model.llm_model = LLM_PRESETS[model_type]
        return config

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.num_query_token = cfg.num_query_token
        self.max_txt_len = cfg.max_txt_len
        #: logits per chunk of the head + loss (lavis/models/llm/head_loss.py); 0 computes them at once
        self.loss_chunk_elements = CHUNK_ELEMENTS
        #: several samples per row of the decoder's batch (lavis/models/llm/packing.py); the runner
        #: sets it from `run.packing`
        self.pack_sequences = False
        if cfg.qformer_text_input:
            raise ValueError(
                "model.qformer_text_input: True is not supported (MiniGPT4Qwen uses no Q-former text input)"
            )

        # vit_ckpt / qformer_config / llm_model: the original files (see lavis/models/__init__.py)
        self.visual_encoder = build_vision_encoder(cfg)
        self.ln_vision = nn.LayerNorm(self.visual_encoder.num_features)  # LAVIS: default eps 1e-5
        self.Qformer, self.query_tokens = build_qformer_for(cfg, self.visual_encoder.num_features)
        self.llm_tokenizer = load_llm_tokenizer(self._tokenizer_path(cfg), cfg.max_txt_len)
        self.llm_model = build_language_model(cfg, self.llm_tokenizer)
        self.llm_proj = nn.Linear(self.Qformer.config.hidden_size, self.llm_model.config.hidden_size)
        self.prompt = build_prompt_builder(self.llm_tokenizer, cfg.num_query_token, cfg.label_rule)
        self.replace_image_token_id = self.prompt.image_pad_id
        # a reply ends at the prompt format's end-of-turn tokens and the LLM's own eos ids
        eos = self.llm_model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.stop_ids = list(self.prompt.stop_ids) + [i for i in eos if i not in self.prompt.stop_ids]
        self._apply_freeze_flags(cfg)
        if cfg.get_lora:
            self.llm_model = self._with_lora(self.llm_model, cfg)
        if cfg.use_grad_checkpoint and (cfg.get_lora or not cfg.freeze_llm):
            # as the ViT: recompute the LLM's activations in backward when it trains
            self.llm_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    @staticmethod
    def _tokenizer_path(cfg):
        return resolve_path(cfg.llm_tokenizer or cfg.llm_model)

    # -- freezing ------------------------------------------------------------
    def _apply_freeze_flags(self, cfg):
        self._frozen_modules = []
        if cfg.freeze_vit:
            self._freeze(self.visual_encoder)
            if cfg.unfreeze_pos_embed:
                self.visual_encoder.embeddings.position_embedding.requires_grad_(True)
        if cfg.freeze_qformer:
            self._freeze(self.ln_vision)
            self._freeze(self.Qformer)
        self.query_tokens.requires_grad_(not cfg.freeze_queries)
        if cfg.freeze_proj:
            self._freeze(self.llm_proj)
        if cfg.freeze_llm:
            self._freeze(self.llm_model)
        logging.info(
            "trainable parameters: %d of %d",
            sum(p.numel() for p in self.parameters() if p.requires_grad),
            sum(p.numel() for p in self.parameters()),
        )

    @staticmethod
    def _with_lora(llm, cfg):
        """LoRA adapters (peft) on `lora_target_modules`; the LLM's own weights stay frozen."""
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules) or default_lora_targets(llm),
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(llm, lora)

    def _freeze(self, module):
        module.requires_grad_(False)
        module.eval()
        self._frozen_modules.append(module)

    def train(self, mode=True):
        """Frozen parts stay in eval mode (no dropout) whatever the runner asks, as in LAVIS."""
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()
        return self

    # -- image side ----------------------------------------------------------
    def maybe_autocast(self, dtype=None):
        device_type = self.device.type
        dtype = dtype or autocast_dtype_named(self.cfg.autocast_dtype)
        if not self.cfg.enable_autocast or (device_type == "cpu" and dtype == torch.float16):
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=dtype)

    def _vit_context(self):
        if self.visual_encoder.embeddings.patch_embedding.weight.dtype == torch.float16:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def encode_queries(self, images):
        """(N, 3, H, W) images -> (N, num_query_token, Q-former hidden): the image side before
        `llm_proj` (what `lavis.tools.cache_features` stores when the image side is frozen)."""
        vit_frozen = not any(p.requires_grad for p in self.visual_encoder.parameters())
        with torch.no_grad() if vit_frozen else contextlib.nullcontext(), self._vit_context():
            feats = vit_features(self.visual_encoder, images)
        qformer_frozen = not any(
            p.requires_grad for p in [*self.Qformer.parameters(), *self.ln_vision.parameters(), self.query_tokens]
        )
        with torch.no_grad() if vit_frozen and qformer_frozen else contextlib.nullcontext():
            feats = self.ln_vision(feats.float())
            return query_features(self.Qformer, self.query_tokens, feats)

    def image_encoder_state(self):
        """The tensors that decide `encode_queries` (ViT, ln_vision, Q-former, query tokens), by name."""
        state = {"query_tokens": self.query_tokens}
        for prefix, module in (
            ("visual_encoder", self.visual_encoder),
            ("ln_vision", self.ln_vision),
            ("Qformer", self.Qformer),
        ):
            state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        return state

    def project_queries(self, queries):
        """Q-former outputs (e.g. cached ones) -> embeddings for the LLM: `llm_proj` only."""
        return self.llm_proj(queries.to(self.llm_proj.weight.device, self.llm_proj.weight.dtype))

    def encode_image(self, images):
        """(N, 3, H, W) images -> (N, num_query_token, llm hidden) embeddings for the LLM."""
        return self.project_queries(self.encode_queries(images))

    def _image_embeds(self, images=None, image_features=None, keep=None):
        """LLM embeddings of the images kept, from pixels or from cached Q-former outputs."""
        source = image_features if image_features is not None else images
        if source is None or (keep is not None and not keep) or not len(source):
            return None
        source = source if keep is None else source[keep]
        return self.project_queries(source) if image_features is not None else self.encode_image(source)

    # -- text + image embeddings ---------------------------------------------------
    def embed_with_images(self, input_ids, image_embeds):
        """Token embeddings with every `<|extra_0|>` slot replaced by image embeddings, in order."""
        embeds = self.llm_model.get_input_embeddings()(input_ids)
        slots = input_ids == self.replace_image_token_id
        needed = int(slots.sum())
        given = 0 if image_embeds is None else image_embeds.shape[0] * image_embeds.shape[1]
        if needed != given:
            raise ValueError(f"the text has {needed} image slots but {given} image embeddings were given")
        if needed:
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), image_embeds.to(embeds.dtype))
        return embeds

    def _pad(self, sequences, value, left=False):
        if len(sequences) == 1:  # one prompt (chat): nothing to pad
            return torch.tensor([list(sequences[0])], dtype=torch.long, device=self.device)
        length = max(len(s) for s in sequences)
        rows = [
            ([value] * (length - len(s)) + list(s)) if left else (list(s) + [value] * (length - len(s)))
            for s in sequences
        ]
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    # -- training -----------------------------------------------------------------
    def forward(self, samples):
        """samples: {"image": (N, 3, H, W) all images of the batch in order, "conversations": [...]};
        instead of "image", "image_features": (N, num_query_token, Q-former hidden) cached
        Q-former outputs (`run.use_cached_features`), of which only `llm_proj` runs.

        Returns {"loss": mean cross-entropy over labelled tokens, "num_tokens": their count,
        "num_padded_tokens": the positions the decoder computed (rows x longest row: the batch
        padded, or packed with `pack_sequences`)}.
        """
        hidden, labels, has_images = self._decode(samples, self.pack_sequences)
        targets = labels[:, 1:]
        selected = targets != IGNORE_INDEX
        num_tokens = int(selected.sum())
        head = self.llm_model.get_output_embeddings()
        cap = getattr(self.llm_model.config, "final_logit_softcapping", None)
        loss = head_loss(hidden[:, :-1][selected], head, targets[selected], cap, self.loss_chunk_elements)
        loss = loss / max(num_tokens, 1)
        if not has_images and torch.is_grad_enabled():
            loss = loss + self._image_side_anchor()
        return {"loss": loss, "num_tokens": num_tokens, "num_padded_tokens": labels.numel()}

    @torch.no_grad()
    def reply_losses(self, samples):
        """Per conversation of `samples` (as `forward` takes them), the mean cross-entropy of its
        labelled tokens (the replies and their end-of-turn tokens): how unlikely the model finds
        each reply, for ranking candidate answers (SEED-Bench's official scoring). (N,) float32."""
        hidden, labels, _ = self._decode(samples, pack=False)
        targets = labels[:, 1:]
        selected = targets != IGNORE_INDEX
        cap = getattr(self.llm_model.config, "final_logit_softcapping", None)
        logits = head_logits(hidden[:, :-1][selected], self.llm_model.get_output_embeddings(), cap).float()
        token_losses = torch.nn.functional.cross_entropy(logits, targets[selected], reduction="none")
        row = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(targets)[selected]
        sums = torch.zeros(labels.shape[0], device=labels.device).index_add_(0, row, token_losses)
        return sums / selected.sum(1).clamp(min=1)

    def _decode(self, samples, pack):
        """The decoder's last hidden states of the batch's conversations (several per row when
        `pack`), their labels aligned with them, and whether any image was embedded."""
        encoded = [self.prompt.encode_conversation(c, self.max_txt_len) for c in samples["conversations"]]
        if hasattr(self.prompt, "check_labels"):  # template prompts: no silently wrong labels
            where = samples.get("where") or [f"sample {i}" for i in range(len(encoded))]
            for conversation, e, place in zip(samples["conversations"], encoded, where):
                self.prompt.check_labels(conversation, e, self.max_txt_len, place)
        images, features = samples.get("image"), samples.get("image_features")
        total = sum(e.num_images_total for e in encoded)
        given = sum(0 if t is None else t.shape[0] for t in (images, features))
        if total != given:
            raise ValueError(f"the batch's conversations have {total} {IMAGE_TOKEN} but {given} images were given")
        rows = None
        if pack and len(encoded) > 1:  # rows up to max_txt_len, as the original pads to
            lengths = [len(e.input_ids) for e in encoded]
            rows = pack_rows(lengths, max(self.max_txt_len, *lengths))
        order = range(len(encoded)) if rows is None else [i for row in rows for i in row]
        starts = [0]
        for e in encoded:
            starts.append(starts[-1] + e.num_images_total)
        # the images each sample kept, in the order their slots appear in the (packed) batch
        keep = [k for i in order for k in range(starts[i], starts[i] + encoded[i].num_images)]
        image_embeds = self._image_embeds(images, features, keep)

        pad_id = self.llm_tokenizer.pad_token_id
        if rows is None:
            input_ids = self._pad([e.input_ids for e in encoded], pad_id)
            labels = self._pad([e.labels for e in encoded], IGNORE_INDEX)
            inputs = {"attention_mask": self._pad([[1] * len(e.input_ids) for e in encoded], 0)}
        else:  # per-sample positions and no mask: a block-diagonal causal mask
            input_ids, labels, position_ids = packed_batch(encoded, rows, pad_id, self.device)
            inputs = {"attention_mask": None, "position_ids": position_ids}
        embeds = self.embed_with_images(input_ids, image_embeds)
        hidden = self._decoder()(inputs_embeds=embeds, use_cache=False, **inputs).last_hidden_state
        return hidden, labels, image_embeds is not None

    def _image_side_anchor(self):
        """0 x the trainable image-side weights: a batch without images (text-only rows) gives them a
        zero gradient instead of none, so DDP/FSDP ranks whose batches differ reduce the same
        gradients (a rank with no image in its batch would otherwise hang the others), without
        running the ViT or Q-former."""
        params = [p for m in (self.visual_encoder, self.ln_vision, self.Qformer, self.llm_proj) for p in m.parameters()]
        return sum(
            (p.sum() * 0.0 for p in [*params, self.query_tokens] if p.requires_grad),
            torch.zeros((), device=self.device),
        )

    def _decoder(self):
        """The LLM's transformer body (under a LoRA wrapper if there is one)."""
        model = self.llm_model
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        return model.model

    # -- generation -----------------------------------------------------------------
    @torch.no_grad()
    def generate_from_ids(self, prompts, images=None, image_features=None, **generate_kwargs):
        """Generate replies for prompt id lists (left-padded as a batch). Returns new ids per prompt.

        Images come as pixels (`images`) or as cached Q-former outputs (`image_features`); the knobs
        (`num_beams`, `temperature`, ...) are checked first (GenerationSettingError with the valid range)."""
        generate_kwargs = check_generate_kwargs(generate_kwargs)
        image_embeds = self._image_embeds(images, image_features)
        input_ids = self._pad(prompts, self.llm_tokenizer.pad_token_id, left=True)
        attention_mask = self._pad([[1] * len(p) for p in prompts], 0, left=True)
        embeds = self.embed_with_images(input_ids, image_embeds)
        tok = self.llm_tokenizer
        kwargs = dict(
            max_new_tokens=32,
            do_sample=False,
            eos_token_id=self.stop_ids,
            pad_token_id=tok.pad_token_id,
            # one process generates alone, also under FSDP (the runner gathers the weights first);
            # transformers would otherwise wait for the other ranks at every token
            synced_gpus=False,
        )
        kwargs.update(generate_kwargs)
        if "suppress_tokens" not in kwargs:  # never the embedding's padding rows, nor an image slot
            banned = [self.replace_image_token_id, *range(len(tok), self.llm_model.config.vocab_size)]
            suppress = _SuppressedIds(banned, self.llm_model.config.vocab_size, self.device)
            # custom processors run after transformers' own, before the sampling warpers (top_p, ...)
            kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []), suppress])
        # input_ids ride along with the embeddings so that `repetition_penalty` also sees the
        # prompt (as in Qwen's own chat); the returned rows then start with them.
        out = self.llm_model.generate(
            input_ids=input_ids, inputs_embeds=embeds, attention_mask=attention_mask, **kwargs
        )
        out = out[:, input_ids.shape[1] :]
        stops = set(kwargs["eos_token_id"]) | {tok.pad_token_id}
        replies = []
        for row in out.tolist():
            reply = []
            for token in row:
                if token in stops:
                    break
                reply.append(token)
            replies.append(reply)
        return replies

    @torch.no_grad()
    def generate(self, samples, **generate_kwargs):
        """samples: {"image": (N, 3, H, W) or None, "text": raw ChatML prompt string(s)} -> reply strings.

        Raw prompts are the caller's own ChatML: their special-token strings are control
        tokens, and each `<ImageHere>` takes the next image.
        """
        texts = [samples["text"]] if isinstance(samples["text"], str) else list(samples["text"])
        prompts = []
        for text in texts:
            ids = []
            for i, piece in enumerate(text.split(IMAGE_TOKEN)):
                if i:
                    ids += [self.replace_image_token_id] * self.num_query_token
                ids += self.llm_tokenizer.encode(piece)
            prompts.append(ids)
        replies = self.generate_from_ids(prompts, samples.get("image"), **generate_kwargs)
        return [self.llm_tokenizer.decode(r, skip_special_tokens=True).strip() for r in replies]

    @torch.no_grad()
    def chat(self, query, history, image_tensor, system=None, max_window_size=None, **generate_kwargs):
        """One chat turn: returns (response, history + [(query, response)])."""
        history = list(history or [])
        ids, num_images = self.prompt.generation_ids(query, history, system, max_window_size)
        images = image_tensor[:num_images] if image_tensor is not None and num_images else None
        reply = self.generate_from_ids([ids], images, **generate_kwargs)[0]
        response = self.llm_tokenizer.decode(reply, skip_special_tokens=True).strip()
        return response, history + [(query, response)]

    # -- building ---------------------------------------------------------------------
    @classmethod
    def missing_files(cls, cfg):
        return missing_weight_files(cfg)

    @classmethod
    def from_config(cls, cfg):
        """Build from `cfg`: ViT, Q-former config and LLM from their files (in `__init__`), then
        the BLIP-2 checkpoint (`pretrained`, if `load_pretrained`), then a MiniGPT4Qwen checkpoint
        (`finetuned`/`ckpt`, if `load_finetuned`), in the original's order."""
        check_weight_files(cfg)
        model = cls(cfg)
        if cfg.load_pretrained and cfg.pretrained:
            checkpoint_keys.load_blip2_pretrained(model, resolve_path(cfg.pretrained))
        if cfg.load_finetuned and (cfg.finetuned or cfg.ckpt):
            model.load_checkpoint(finetuned_checkpoint(resolve_path(cfg.finetuned or cfg.ckpt)))
        return model

    def convert_checkpoint_keys(self, state):
        """Original MiniGPT4Qwen key names (LAVIS / Qwen-1) -> ours; ours pass through."""
        return checkpoint_keys.convert_checkpoint_keys(self, state)


class _SuppressedIds(LogitsProcessor):
    """A logits processor that bans `ids` from being generated.  Hand-written because
    transformers' `suppress_tokens` rebuilds its mask with `torch.isin` at every step, which costs
    as much as the LLM itself when the ids are many (a model whose embedding has ~150k padding rows
    past its tokenizer); this mask is made once."""

    def __init__(self, ids, vocab_size, device):
        self.mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        self.mask[list(ids)] = True

    def __call__(self, input_ids, scores):
        return scores.masked_fill(self.mask[: scores.shape[-1]], float("-inf"))
