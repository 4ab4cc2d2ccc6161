"""`Blip2Engine`: BLIP-2 behind one small batched interface.

    engine = Blip2Engine.load("blip2-opt-2.7b")        # or a folder, or "demo"
    batch = engine.encode(images)                      # the image encoder, once per image
    vecs = engine.embed_images(batch)                  # (B, Q, D) float32, L2-normalised
    caps = engine.caption(batch)                       # reuses the same encoder output
    q = engine.embed_texts(["a dog on a beach"])       # (1, D)
    scores = engine.itc(vecs, q)                       # (B, 1): max over the Q query vectors

Every method takes a list of PIL images (any mode) or an `ImageBatch` from `encode`.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_PRECISION, Precision, Settings
from ..errors import InputError
from ..media.images import to_rgb
from ..presets import resolve
from ..records import Turn
from ..store.features import Features
from . import explain, generation, layout, precision, retrieval, stored
from .loading import LoadedPair, free_memory, load_pair, processor_settings, resolve_device, text_side
from .precision import Plan
from .precision import plan as plan_precision
from .prompts import vqa_prompt
from .vision import SIDES, ImageBatch, Images, encoder_fingerprint, encoder_hidden, tie_encoders
from .work import model_work, to_numpy


@dataclass(frozen=True)
class Question:
    image: Image.Image
    question: str
    history: Sequence[Turn] = ()


class Blip2Engine:
    def __init__(
        self, pair: LoadedPair, *, name: str, plan: Plan | None = None, share_encoder: bool = True,
        query_dtype: torch.dtype | None = None,
    ) -> None:
        """`plan`: the int8 stages to quantize on a CPU (its dtype is the pair's, as loaded)."""
        self.name = name
        self.precision = plan or Plan(str(pair.retrieval.dtype).removeprefix("torch."))
        self.device = pair.device
        self._lock = threading.RLock()
        self._ret, self._gen = pair.retrieval, pair.generation
        self._ret_processor, self._gen_processor = pair.retrieval_processor, pair.generation_processor
        self._gen_processor.tokenizer.truncation_side = "left"  # see generation.prompt_tokens
        self._same_pixels = processor_settings(self._ret_processor) == processor_settings(self._gen_processor)
        ret_vision, gen_vision = self._ret.vision_model, self._gen.vision_model
        same_weights = encoder_fingerprint(ret_vision) == encoder_fingerprint(gen_vision)
        # "shared": one encoder pass per image feeds both models; "separate": one pass each.
        shareable = same_weights and self._same_pixels
        self.encoder_mode = "shared" if share_encoder and shareable else "separate"
        if self.encoder_mode == "shared":
            tie_encoders(self._ret.vision_model, self._gen.vision_model)
        if self.device.type == "cpu":
            self._quantize(self.precision)
        for model in (self._ret, self._gen):
            layout.contiguous_slices(model.qformer)
        layout.contiguous_head(self._gen.language_model)
        self.caption_decoding = generation.CAPTION  # a benchmark may fix the token count
        self.encoder_passes = 0  # images run through an image encoder, summed over calls
        self.model_calls = 0  # batched forward passes of any model part
        # A text query reads every weight of the Q-Former's text side for a few tokens, so its
        # time is bound by memory: a bfloat16 copy of that side halves it (and more, where the
        # CPU has bfloat16 matmuls). Its vectors agree with float32 to a cosine of 0.9999.
        self._text = self._ret if query_dtype is None else text_side(self._ret, query_dtype)
        qformer = self._ret.config.qformer_config
        self._max_text_tokens = qformer.max_position_embeddings

    @classmethod
    def load(cls, model: str, *, device: str = "auto", precision: Precision = DEFAULT_PRECISION,
             share_encoder: bool = True) -> Blip2Engine:
        """Load a preset name or a folder holding `retrieval/` and `generation/` checkpoints,
        each stage in the precision `precision` says (`config.Precision`; `auto` on a CPU is
        measured once: `models.precision`). `share_encoder=False` forces one encoder pass
        per model even when they could share one."""
        source = resolve(model)
        plan = plan_precision(resolve_device(device), precision)
        pair = load_pair(source, device=device, dtype=plan.dtype)
        fast_queries = precision.query == "bfloat16" or (
            precision.query == "auto" and plan.dtype == "float32" and pair.device.type == "cpu")
        return cls(pair, name=source.name, plan=plan, share_encoder=share_encoder,
                   query_dtype=torch.bfloat16 if fast_queries else None)

    @classmethod
    def from_settings(cls, settings: Settings, model: str) -> Blip2Engine:
        """`load` with the settings' device and precisions (the entry point has set up the
        process's threads: `runtime.configure`)."""
        return cls.load(model, device=settings.device, precision=settings.precision)

    def batch_size(self, most: int = 32, share: float = 0.6, free: int | None = None) -> int:
        """Images an indexing batch should hold: as many as `share` of the `free` memory
        (default: what is free now) takes for their captions' beam search
        (`generation.memory_per_image`), up to `most`. Taller batches keep the decoder's
        matmuls nearer the machine's peak (BENCHMARKS.md has the figures)."""
        per_image = generation.memory_per_image(self._gen, self.caption_decoding)
        free = free_memory(self.device) if free is None else free
        return max(1, min(most, int(free * share) // per_image))

    @property
    def models(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """(retrieval, generation) HF models, for inspection and benchmarks."""
        return self._ret, self._gen

    @property
    def query_tokens(self) -> int:
        return self._ret.config.num_query_tokens

    @property
    def dim(self) -> int:
        return self._ret.config.image_text_hidden_size

    # -- images -------------------------------------------------------------------------------

    @model_work
    def encode(self, images: Images) -> ImageBatch:
        """Preprocess images; encoder outputs are computed on first use and cached in the batch."""
        if isinstance(images, ImageBatch):
            return images
        if not images:
            raise InputError("no images given")
        rgb = [to_rgb(image) for image in images]
        ret_pixels = self._pixels(self._ret_processor, self._ret, rgb)
        gen_pixels = ret_pixels if self._same_pixels else self._pixels(self._gen_processor, self._gen, rgb)
        return ImageBatch(pixels={"retrieval": ret_pixels, "generation": gen_pixels})

    @model_work
    def embed_images(self, images: Images) -> np.ndarray:
        """(B, Q, D) float32, L2-normalised: one vector per Q-Former query token."""
        embeds = self._image_embeds(self.encode(images), "retrieval")
        self.model_calls += 1
        return to_numpy(retrieval.image_vectors(self._ret, embeds))

    @model_work
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(B, D) float32, L2-normalised projected [CLS] vectors."""
        ids, mask = self._text_tokens(texts)
        self.model_calls += 1
        return to_numpy(retrieval.text_vectors(self._text, ids, mask))

    @staticmethod
    def itc(image_vecs: np.ndarray, text_vecs: np.ndarray) -> np.ndarray:
        """(B_img, B_text): BLIP-2's first-stage score, the max over query tokens of the cosine."""
        return np.einsum("iqd,td->iqt", image_vecs, text_vecs).max(axis=1)

    @model_work
    def itm(self, images: Images, texts: str | Sequence[str], *, logit: bool = False) -> np.ndarray:
        """(B,): the match head's P(match) for image i with text i (one text: with every image);
        `logit`: its "match" logit averaged over the queries instead, the score LAVIS adds to
        the ITC similarity when it reranks for retrieval."""
        batch = self.encode(images)
        texts = [texts] * len(batch) if isinstance(texts, str) else list(texts)
        if len(texts) != len(batch):
            raise InputError(f"{len(batch)} images but {len(texts)} texts")
        embeds = self._image_embeds(batch, "retrieval")
        ids, mask = self._text_tokens(texts)
        self.model_calls += 1
        if logit:
            return to_numpy(retrieval.match_logits(self._ret, embeds, ids, mask)[:, 1])
        return to_numpy(retrieval.match_probability(self._ret, embeds, ids, mask))

    def explain(self, image: Images, text: str) -> np.ndarray:
        """(rows, cols) in [0, 1] over the image's patches: where the match head finds `text`
        (a Grad-CAM over the Q-Former's cross-attention: `explain.gradcam`)."""
        with self._lock:
            with torch.inference_mode():
                embeds = self._image_embeds(self.encode(image), "retrieval")[:1]
                ids, mask = self._text_tokens([text])
            self.model_calls += 1
            return explain.gradcam(self._ret, embeds, ids.clone(), mask.clone())

    # -- stored features (`store.features`): the encoder output kept, the encoder skipped -----

    def feature_key(self, side: str) -> str:
        """The key under which `side`'s encoder output is stored: "shared" when one pass
        feeds both stages."""
        return "shared" if self.encoder_mode == "shared" else side

    @model_work
    def features(self, images: Images, sides: Sequence[str] = SIDES) -> list[dict[str, Features]]:
        """Each image's encoder output for `sides`, compact, by key; encodes if needed."""
        batch = self.encode(images)
        keys = list(dict.fromkeys(self.feature_key(side) for side in sides))
        for side in sides:
            self._image_embeds(batch, side)  # fills batch.hidden[its key]
        return stored.compact(batch, keys)

    def from_features(self, kept: Sequence[dict[str, Features]], side: str) -> ImageBatch | None:
        """A batch whose encoder output for `side` comes from stored features, or None when
        one of them lacks it."""
        model = self._ret if side == "retrieval" else self._gen
        dtype = model.vision_model.post_layernorm.weight.dtype
        return stored.batch(kept, self.feature_key(side), self.device, dtype)

    # -- text generation ----------------------------------------------------------------------

    def caption(self, images: Images, prompt: str | None = None) -> list[str]:
        """Beam-search captions (beams 5, 8 to 30 new tokens); the prompt is cut from each."""
        batch = self.encode(images)
        return self._generate(batch, [prompt or ""] * len(batch), self.caption_decoding)

    @model_work
    def caption_tokens(self, images: Images, decoding: generation.Decoding | None = None) -> torch.Tensor:
        """(B, new tokens): the caption ids before decoding to text, for precision checks."""
        batch = self.encode(images)
        return self._generate_ids(batch, [""] * len(batch), decoding or self.caption_decoding)

    def ask(self, image: Image.Image | Images, question: str, history: Sequence[Turn] = ()) -> str:
        """Answer one question about one image (or a list of one, or a batch of one from
        stored features); `history` holds the earlier turns of a chat."""
        batch = self.encode([image] if isinstance(image, Image.Image) else image)
        return self._generate(batch, [vqa_prompt(question, tuple(history))], generation.ANSWER)[0]

    def ask_each(self, images: Images, question: str) -> list[str]:
        """One question asked of each image, in one batched beam search."""
        batch = self.encode(images)
        return self._generate(batch, [vqa_prompt(question, ())] * len(batch), generation.ANSWER)

    def ask_batch(self, questions: Sequence[Question]) -> list[str]:
        """Answer (image, question, history) items in one batched beam search."""
        if not questions:
            return []
        prompts = [vqa_prompt(q.question, q.history) for q in questions]
        batch = self.encode([q.image for q in questions])
        return self._generate(batch, prompts, generation.ANSWER)

    @model_work
    def _generate(self, batch: ImageBatch, prompts: list[str], decoding: generation.Decoding) -> list[str]:
        return generation.texts(self._gen_processor.tokenizer, self._generate_ids(batch, prompts, decoding))

    def _generate_ids(
        self, batch: ImageBatch, prompts: list[str], decoding: generation.Decoding
    ) -> torch.Tensor:
        embeds = self._image_embeds(batch, "generation")
        self.model_calls += 1
        return generation.generate_ids(self._gen, self._gen_processor.tokenizer, embeds, prompts, decoding)

    # -- internals ----------------------------------------------------------------------------

    def _image_embeds(self, batch: ImageBatch, side: str) -> torch.Tensor:
        """(B, N, H): encoder output through `side`'s own post_layernorm, encoding if needed."""
        model = self._ret if side == "retrieval" else self._gen
        key = "shared" if self.encoder_mode == "shared" else side
        if key not in batch.hidden:
            batch.hidden[key] = encoder_hidden(model.vision_model, batch.pixels[side])
            self.encoder_passes += len(batch)
            self.model_calls += 1
        return model.vision_model.post_layernorm(batch.hidden[key])

    def _quantize(self, plan: Plan) -> None:
        """The plan's int8 stages (CPU), once the encoders are tied: a shared encoder once."""
        if plan.dtype == "int8":
            precision.quantize_cpu_int8(self._ret)
            precision.quantize_cpu_int8(self._gen)
            return
        if plan.encoder_int8:
            for model in (self._ret, self._gen) if self.encoder_mode == "separate" else (self._ret,):
                precision.quantize_linear_int8(model.vision_model.encoder)
        if plan.decoder_int8:
            precision.quantize_decoder_int8(self._gen.language_model)
        # The float layers replaced are held in reference cycles (transformers' modules) until
        # a collection: without one, the memory free for a batch counted them (at real size,
        # 14 GB: a batch of 13 images instead of 32) and a large model kept both copies.
        gc.collect()

    def _pixels(self, processor, model, images: list[Image.Image]) -> torch.Tensor:
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        dtype = model.vision_model.embeddings.patch_embedding.weight.dtype
        return pixels.to(self.device, dtype)

    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids: the Q-Former text side reads its first token ([CLS])."""
        tokens = self._ret_processor.tokenizer(
            list(texts), padding=True, padding_side="right", truncation=True,
            max_length=self._max_text_tokens, return_tensors="pt",
        )
        return tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)

