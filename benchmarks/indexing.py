"""Indexing throughput: the product's indexer against the model-card loop, on the same images.

The plain loop is what the BLIP-2 model cards show, one image at a time: the processor, the
retrieval model for the image vectors, then `generate` for the caption (so the image encoder
runs twice, and each prompt once per beam). The product is `index_paths`, the CLI's own
indexer, into a fresh collection. Both decode the same number of new tokens with the same
beams. Encoder passes are counted by a hook on the image encoder, in the same runs.

Agreement of a precision with float32 is measured on one batch: the cosine of each image
vector with its float32 twin, and the share of images whose caption tokens are identical.
The real-size models hold random weights, so their captions are token ids with no meaning;
identical ids are still the test of whether a precision changes what the decoder picks.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from demo.shapes import write_collection
from search.collection import Collection
from search.config import Precision
from search.models import generation, precision
from search.models.engine import Blip2Engine
from search.models.loading import LoadedPair

from . import realsize


@dataclass
class Run:
    images: int
    seconds: float
    encoder_passes: int
    batch_size: int = 1

    def to_json(self) -> dict:
        return {"images": self.images, "batch_size": self.batch_size, "seconds": round(self.seconds, 2),
                "images_per_second": round(self.images / self.seconds, 4),
                "encoder_passes_per_image": self.encoder_passes / self.images}


class PassCounter:
    """Counts images through the image encoder of `models` (retrieval and generation; their
    encoder is one module when shared)."""

    def __init__(self, models: tuple[torch.nn.Module, torch.nn.Module]):
        self.images = 0
        encoders = {id(m.vision_model.encoder): m.vision_model.encoder for m in models}
        self._handles = [e.register_forward_hook(self._count, with_kwargs=True)
                         for e in encoders.values()]

    def _count(self, module, args, kwargs, output) -> None:
        embeds = kwargs.get("inputs_embeds", args[0] if args else None)
        self.images += len(embeds)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def images(folder: Path, count: int, seed: int = 7) -> list[Path]:
    write_collection(folder, seed, count)
    return sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))


def plain_loop(pair: LoadedPair, paths: list[Path], decoding: generation.Decoding) -> Run:
    counter = PassCounter((pair.retrieval, pair.generation))
    started = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            image = Image.open(path).convert("RGB")
            inputs = pair.retrieval_processor(images=image, text="a photo", return_tensors="pt")
            inputs["pixel_values"] = inputs["pixel_values"].to(pair.retrieval.dtype)
            pair.retrieval(**inputs, use_image_text_matching_head=False)  # the card's image embeds
            inputs = pair.generation_processor(images=image, text="", return_tensors="pt")
            inputs["pixel_values"] = inputs["pixel_values"].to(pair.generation.dtype)
            pair.generation.generate(**inputs, **generation.decoding_kwargs(decoding))
    seconds = time.perf_counter() - started
    counter.close()
    return Run(len(paths), seconds, counter.images)


def product(engine: Blip2Engine, folder: Path) -> Run:
    """`index_paths` with the CLI's defaults: the batch is the engine's, sized to the memory
    free once the models are loaded (asked here too, to report it)."""
    from indexer.pipeline import IndexOptions, index_paths  # the CLI's own indexer

    batch_size = engine.batch_size()
    passes = engine.encoder_passes
    with tempfile.TemporaryDirectory() as index:
        collection = Collection.open(Path(index), create=True)
        try:
            started = time.perf_counter()
            summary = index_paths(collection, engine, [folder], IndexOptions())
            seconds = time.perf_counter() - started
        finally:
            collection.close()
    return Run(summary.added, seconds, engine.encoder_passes - passes, batch_size)


@dataclass
class Outputs:
    vectors: np.ndarray  # (B, Q, D)
    tokens: torch.Tensor  # (B, new tokens)
    embed_seconds: float
    caption_seconds: float
    embed_flops: int


def outputs(engine: Blip2Engine, batch: list[Image.Image], decoding: generation.Decoding) -> Outputs:
    """One batch through the embedding stage (timed, then once more under the FLOP counter),
    then the caption stage on the same encoder output, as the indexer runs them."""
    engine.embed_images(batch)  # warm up
    with FlopCounterMode(display=False) as flops:
        engine.embed_images(batch)
    encoded = engine.encode(batch)
    started = time.perf_counter()
    vectors = engine.embed_images(encoded)  # runs the encoder, and keeps its output in `encoded`
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tokens = engine.caption_tokens(encoded, decoding)
    caption_seconds = time.perf_counter() - started
    return Outputs(vectors, tokens, embed_seconds, caption_seconds, flops.get_total_flops())


def agreement(reference: Outputs, other: Outputs, pad: int | None = None) -> dict:
    """Vector cosine per query vector, and the share of images whose caption ids are the same
    (ids after the last real token, padding, are ignored)."""
    cosine = np.sum(reference.vectors * other.vectors, axis=-1)  # unit vectors: (B, Q)
    same = [_ids(a, pad) == _ids(b, pad) for a, b in zip(reference.tokens, other.tokens, strict=True)]
    return {"vector_cosine_min": round(float(cosine.min()), 5),
            "vector_cosine_mean": round(float(cosine.mean()), 5),
            "captions_identical": round(float(np.mean(same)), 3), "images": len(same)}


def _ids(row: torch.Tensor, pad: int | None) -> list[int]:
    ids = row.tolist()
    while ids and ids[-1] == pad:
        ids.pop()
    return ids


def trained_agreement(count: int = 64, seed: int = 20261122) -> dict:
    """bfloat16 and int8 against float32 on the shipped demo model (trained weights, whose
    captions mean something), over `count` held-out shapes images, captions as indexed."""
    with tempfile.TemporaryDirectory() as scratch:
        batch = [Image.open(p).convert("RGB") for p in images(Path(scratch), count, seed)]
    found: dict = {}
    for name in ("float32", *measured(), "default"):
        chosen = Precision() if name == "default" else Precision(name, query="float32", encoder="same",
                                                                   decoder="same")
        engine = Blip2Engine.load("demo", device="cpu", precision=chosen)
        pad = engine.generator.config.text_config.pad_token_id
        out = Outputs(engine.embed_images(batch), engine.caption_tokens(batch), 0.0, 0.0, 0)
        found[name] = out if name == "float32" else agreement(found["float32"], out, pad)
    return {name: found[name] for name in (*measured(), "default")}


def measured() -> tuple[str, ...]:
    """The lower precisions compared with float32: bfloat16 only where the CPU has bfloat16
    matmul instructions (elsewhere torch emulates it, a hundred times slower, and the
    product never picks it: `precision.default_dtype`), and int8."""
    return ("bfloat16", "int8") if "bfloat16" in precision.cpu_speeds() else ("int8",)


def stage_figures(out: Outputs, count: int, depth: realsize.Depth, peak: float | None, flops: int) -> dict:
    """Per-image rates and per-layer times; FLOP figures unless `peak` (of the encoder's
    precision) is None. `flops`: the embedding stage's, as counted in float32 (the same
    arithmetic in every precision; dynamic int8 Linear layers are not aten matmuls, so the
    FLOP counter does not see them)."""
    figures = {
        "embed_images_per_second": round(count / out.embed_seconds, 3),
        "caption_images_per_second": round(count / out.caption_seconds, 3),
        "embed_ms_per_image_per_vision_layer": round(out.embed_seconds / count / depth.vision * 1000, 2),
        "caption_ms_per_image_per_language_layer":
            round(out.caption_seconds / count / depth.language * 1000, 2),
    }
    if peak is None:
        return figures
    achieved = flops / out.embed_seconds
    return figures | {
        "embed_gflop_per_image": round(flops / count / 1e9, 1),
        "embed_gflops_achieved": round(achieved / 1e9, 1),
        "embed_fraction_of_peak": round(achieved / peak, 3),
    }


def _encoder_dtype(plan: precision.Plan) -> str:
    return "int8" if plan.encoder_int8 else plan.dtype


def run(depth: realsize.Depth, *, plain_images: int, product_images: int, stage_batch: int,
        new_tokens: int, peaks: dict[str, float], default_dtype: str, agreement_images: int = 64,
        log=print) -> dict:
    """Every figure of the indexing part, in one process. `peaks`: same-run matmul FLOP/s per
    dtype name."""
    decoding = generation.Decoding(num_beams=5, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    report: dict = {"depth": depth.__dict__, "full_depth": depth.full, "new_tokens": new_tokens,
                    "num_beams": decoding.num_beams, "stage_batch": stage_batch,
                    "default_dtype": default_dtype}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        paths = images(folder, product_images)
        batch = [Image.open(p).convert("RGB") for p in paths[:stage_batch]]
        results: dict[str, Outputs] = {}
        for name in ("float32", *measured(), "default"):
            if name == "default":  # the product's CPU default per stage, as `precision.plan` measures it
                engine = realsize.default_engine(depth, dtype=default_dtype, name="real-size-default")
            else:  # one precision for every stage (int8: every Linear layer, from float32)
                pair = realsize.build(depth, dtype=torch.bfloat16 if name == "bfloat16" else torch.float32)
                if name in ("float32", default_dtype):  # before the engine adds its hooks to the models
                    report[f"plain_{name}"] = plain_loop(pair, paths[:plain_images], decoding).to_json()
                    log(f"plain loop, {name}: {report[f'plain_{name}']}")
                engine = Blip2Engine.from_pair(pair, name=f"real-size-{name}", plan=precision.Plan(name))
                del pair
            engine.caption_decoding = decoding
            if name == "default":
                report["default_precision"] = engine.precision.describe()
            if name in ("float32", default_dtype, "default"):
                side = product(engine, folder)
                report[f"product_{name}"] = side.to_json()
                log(f"product, {name}: {report[f'product_{name}']}")
            results[name] = outputs(engine, batch, decoding)
            report[f"stages_{name}"] = stage_figures(results[name], len(batch), depth,
                                                     peaks.get(_encoder_dtype(engine.precision)),
                                                     results["float32"].embed_flops)
            if name != "float32":
                report[f"stages_{name}"] |= agreement(results["float32"], results[name])
            log(f"stages, {name}: {report[f'stages_{name}']}")
            del engine
            gc.collect()
    report["agreement_trained_demo_model"] = trained_agreement(agreement_images)
    log(f"agreement on the trained demo model: {report['agreement_trained_demo_model']}")

    def rate(side: str, name: str) -> float:
        return report[f"{side}_{name}"]["images_per_second"]

    default = report["product_default"]
    report["index_speedup_same_precision"] = {  # both sides float32, and both at the default dtype
        name: round(rate("product", name) / rate("plain", name), 2) for name in ("float32", default_dtype)}
    report["index_speedup_default"] = round(rate("product", "default") / rate("plain", "float32"), 2)
    report["encoder_passes_per_image"] = {"plain": report["plain_float32"]["encoder_passes_per_image"],
                                          "product": default["encoder_passes_per_image"]}
    report["embed_fraction_of_peak"] = report["stages_default"].get("embed_fraction_of_peak")
    return report
