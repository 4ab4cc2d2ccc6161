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

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_PRECISION, Precision, Settings
from ..errors import InputError
from ..media.images import to_rgb
from ..presets import resolve
from ..records import Turn
from . import explain, generation, retrieval, sizing, stored
from .loading import LoadedPair, check_dtype, processor_settings, resolve_device
from .parts import PairSource, Parts
from .precision import Plan
from .precision import plan as plan_precision
from .prompts import vqa_prompt
from .reading import CheckpointSource, open_source
from .vision import ImageBatch, Images, encoder_hidden
from .work import model_work, to_numpy


@dataclass(frozen=True)
class Question:
    image: Image.Image
    question: str
    history: Sequence[Turn] = ()


class Blip2Engine:
    def __init__(self, source: CheckpointSource | PairSource, *, name: str,
                 share_encoder: bool = True) -> None:
        """`source` builds the parts (`parts`), each on first use, in the precision of its plan."""
        self.name = name
        self.precision, self.device = source.plan, source.device
        self.parts = Parts(source)
        self._lock = threading.RLock()
        self._ret_config, self._gen_config = source.configs
        self._share_encoder = share_encoder
        self._encoder_mode: str | None = None  # decided when first needed: `encoder_mode`
        self._float = source.float_dtype  # the dtype of the stages' float weights and activations
        self.caption_decoding = generation.CAPTION  # a benchmark may fix the token count
        self.encoder_passes = 0  # images run through an image encoder, summed over calls
        self.model_calls = 0  # batched forward passes of any model part
        self._max_text_tokens = self._ret_config.qformer_config.max_position_embeddings

    @classmethod
    def load(cls, model: str, *, device: str = "auto", precision: Precision = DEFAULT_PRECISION,
             share_encoder: bool = True, cache: Path | None = None) -> Blip2Engine:
        """A preset name or a folder holding `retrieval/` and `generation/` checkpoints, each
        part read from their safetensors when first used, in the precision `precision` says
        (`config.Precision`; `auto` on a CPU is measured once: `models.precision`); `cache`:
        where int8 stages are kept once quantized. Nothing but the configs and the
        tokenizers is read here. `share_encoder=False` forces one encoder pass per model
        even when they could share one."""
        source = resolve(model)
        target = resolve_device(device)
        plan = plan_precision(target, precision)
        check_dtype(plan.dtype)
        return cls(open_source(source, target, precision, plan, cache), name=source.name,
                   share_encoder=share_encoder)

    @classmethod
    def from_pair(cls, pair: LoadedPair, *, name: str, plan: Plan | None = None, share_encoder: bool = True,
                  query_dtype: torch.dtype | None = None) -> Blip2Engine:
        """An engine over models already loaded (the benchmarks' random real-size pair);
        `plan`: the int8 stages to quantize on a CPU (its dtype is the pair's, as loaded)."""
        plan = plan or Plan(str(pair.retrieval.dtype).removeprefix("torch."))
        return cls(PairSource(pair, plan, query_dtype), name=name, share_encoder=share_encoder)

    @classmethod
    def from_settings(cls, settings: Settings, model: str) -> Blip2Engine:
        """`load` with the settings' device, precisions and cache (the entry point has set up
        the process's threads: `runtime.configure`)."""
        return cls.load(model, device=settings.device, precision=settings.precision, cache=settings.cache)

    batch_size = sizing.batch_size
    index_parts = sizing.index_parts

    @property
    def loaded(self) -> list[str]:
        """The parts built so far (`parts.NAMES`)."""
        return self.parts.loaded

    @property
    def encoder_mode(self) -> str:
        """"shared": one encoder pass per image feeds both stages (their checkpoints hold the
        same encoder weights, checked by hash, and preprocess pixels alike); "separate"."""
        if self._encoder_mode is None:
            shareable = self._share_encoder and self._same_pixels and self.parts.source.same_encoder()
            self._encoder_mode = "shared" if shareable else "separate"
        return self._encoder_mode

    def prepare(self, names: Sequence[str]) -> None:
        """Build the parts `names` now (a server does so off its model thread, so that the
        requests which need only parts already built are not held up meanwhile)."""
        for name in names:
            self.parts[name]

    @functools.cached_property
    def _ret_processor(self):
        return self.parts.source.processor("retrieval")

    @functools.cached_property
    def _gen_processor(self):
        processor = self.parts.source.processor("generation")
        processor.tokenizer.truncation_side = "left"  # see generation.prompt_tokens
        return processor

    @functools.cached_property
    def _same_pixels(self) -> bool:
        return processor_settings(self._ret_processor) == processor_settings(self._gen_processor)

    @property
    def query_tokens(self) -> int:
        return self._ret_config.num_query_tokens

    @property
    def dim(self) -> int:
        return self._ret_config.image_text_hidden_size

    # -- images -------------------------------------------------------------------------------

    @model_work
    def encode(self, images: Images) -> ImageBatch:
        """Preprocess images; encoder outputs are computed on first use and cached in the batch."""
        if isinstance(images, ImageBatch):
            return images
        if not images:
            raise InputError("no images given")
        rgb = [to_rgb(image) for image in images]
        ret_pixels = self._pixels(self._ret_processor, rgb)
        gen_pixels = ret_pixels if self._same_pixels else self._pixels(self._gen_processor, rgb)
        return ImageBatch(pixels={"retrieval": ret_pixels, "generation": gen_pixels})

    @model_work
    def embed_images(self, images: Images) -> np.ndarray:
        """(B, Q, D) float32, L2-normalised: one vector per Q-Former query token."""
        embeds = self._image_embeds(self.encode(images), "retrieval")
        self.model_calls += 1
        return to_numpy(retrieval.image_vectors(self.parts["retrieval"], embeds))

    @model_work
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(B, D) float32, L2-normalised projected [CLS] vectors."""
        ids, mask = self._text_tokens(texts)
        text = self.parts["text"]
        self.model_calls += 1
        return to_numpy(retrieval.text_vectors(text, ids, mask))

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
        head = self.parts["retrieval"]
        if logit:
            return to_numpy(retrieval.match_logits(head, embeds, ids, mask)[:, 1])
        return to_numpy(retrieval.match_probability(head, embeds, ids, mask))

    def explain(self, image: Images, text: str) -> np.ndarray:
        """(rows, cols) in [0, 1] over the image's patches: where the match head finds `text`
        (a Grad-CAM over the Q-Former's cross-attention: `explain.gradcam`)."""
        with self._lock:
            with torch.inference_mode():
                embeds = self._image_embeds(self.encode(image), "retrieval")[:1]
                ids, mask = self._text_tokens([text])
            self.model_calls += 1
            return explain.gradcam(self.parts["retrieval"], embeds, ids.clone(), mask.clone())

    # -- stored features (`store.features`): the encoder output kept, the encoder skipped -----

    feature_key = stored.feature_key
    feature_keys = staticmethod(stored.feature_keys)
    features = stored.features
    from_features = stored.from_features

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
        model = self.generator
        self.model_calls += 1
        return generation.generate_ids(model, self._gen_processor.tokenizer, embeds, prompts, decoding)

    @property
    def generator(self) -> SimpleNamespace:
        """The generation stage as `generation` reads it (built when first used)."""
        return generation.stage(self._gen_config, self.parts["generation"], self.parts["language_model"])

    # -- internals ----------------------------------------------------------------------------

    def _image_embeds(self, batch: ImageBatch, side: str) -> torch.Tensor:
        """(B, N, H): encoder output through `side`'s own post_layernorm, encoding if needed."""
        norm = self.parts[side].post_layernorm
        return norm(self._hidden(batch, side).to(norm.weight.dtype))

    def _hidden(self, batch: ImageBatch, side: str) -> torch.Tensor:
        """`side`'s encoder output before its LayerNorm: from the batch when it holds it (run
        or stored), else from the encoder; the generation side reuses the retrieval side's
        where they share one (`encoder_mode`)."""
        for key in self.feature_keys(side):
            if key in batch.hidden:
                return batch.hidden[key]
        if side == "generation" and self.encoder_mode == "shared":
            hidden = self._hidden(batch, "retrieval")
        else:
            encoder = self.parts["encoder" if side == "retrieval" else "generation_encoder"]
            hidden = encoder_hidden(encoder, batch.pixels[side], self._float)
            self.encoder_passes += len(batch)
            self.model_calls += 1
        batch.hidden[side] = hidden
        return hidden

    def _pixels(self, processor, images: list[Image.Image]) -> torch.Tensor:
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self._float)

    def _text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids: the Q-Former text side reads its first token ([CLS])."""
        tokens = self._ret_processor.tokenizer(
            list(texts), padding=True, padding_side="right", truncation=True,
            max_length=self._max_text_tokens, return_tensors="pt",
        )
        return tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)

