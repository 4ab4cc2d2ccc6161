"""Loading a (retrieval, generation) checkpoint pair through `from_pretrained` only.

The same path serves a hub id (`Salesforce/blip2-itm-vit-g`), a folder in the HF cache and
a tiny test checkpoint, so the tests exercise exactly what a user runs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache
from transformers import (
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
)
from transformers.utils import logging as hf_logging

from ..config import Device, DType, choices
from ..errors import ConfigError, ModelNotAvailable
from ..presets import ModelSource

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedPair:
    retrieval: Blip2ForImageTextRetrieval
    retrieval_processor: Blip2Processor
    generation: Blip2ForConditionalGeneration
    generation_processor: Blip2Processor
    device: torch.device


def set_threads(threads: int) -> None:
    """torch's intra-op threads (`runtime.configure` sets them beside FAISS's)."""
    torch.set_num_threads(threads)


def resolve_device(device: str) -> torch.device:
    if device not in choices(Device):
        raise ConfigError(f"unknown device {device!r}: choose one of {', '.join(choices(Device))}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but no CUDA GPU is available")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def check_dtype(dtype: str) -> None:
    known = [name for name in choices(DType) if name != "auto"]
    if dtype not in known:
        raise ConfigError(f"unknown dtype {dtype!r}: choose one of {', '.join(known)}")


def load_pair(source: ModelSource, *, device: str = "auto", dtype: str = "float32") -> LoadedPair:
    """Load both models in eval mode on `device` in `dtype` (float32, bfloat16, float16, int8)."""
    check_dtype(dtype)
    target = resolve_device(device)
    check_reachable(source)
    kwargs = _precision_kwargs(dtype, target)
    with quiet_hf():
        retrieval = _load(Blip2ForImageTextRetrieval, source.retrieval, source, kwargs)
        generation = _load(Blip2ForConditionalGeneration, source.generation, source, kwargs)
        ret_processor = _load(Blip2Processor, source.retrieval, source, {})
        gen_processor = _load(Blip2Processor, source.generation, source, {})
    for model in (retrieval, generation):
        model.eval().requires_grad_(False)
        if "quantization_config" not in kwargs:
            model.to(target)
    return LoadedPair(retrieval, ret_processor, generation, gen_processor, target)


def free_memory(device: torch.device) -> int:
    """Bytes this process could still allocate on `device`: free GPU memory, or the kernel's
    MemAvailable (page cache that can be dropped included) on the CPU; 4 GiB where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def _precision_kwargs(dtype: str, device: torch.device) -> dict:
    if dtype != "int8":
        return {"dtype": DTYPES[dtype]}
    if device.type == "cpu":
        return {"dtype": torch.float32}  # quantized after loading, see precision.quantize_cpu_int8
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ConfigError("int8 on CUDA needs bitsandbytes: pip install bitsandbytes") from None
    return {
        "dtype": torch.float16,
        "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
        "device_map": {"": device.index or 0},
    }


def check_reachable(source: ModelSource) -> None:
    """Fail at once, in one line, when a hub checkpoint is neither cached nor downloadable.

    Without this, a machine with no route to the hub spends about 25 s in retries first.
    """
    if source.local:
        return
    missing = [repo for repo in (source.retrieval, source.generation)
               if not isinstance(try_to_load_from_cache(repo, "config.json"), str)]
    if missing and not _hub_reachable():
        raise ModelNotAvailable(_missing_message(missing, source))


def _hub_reachable(timeout: float = 3.0) -> bool:
    if hub_constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(hub_constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load(cls, location: str, source: ModelSource, kwargs: dict):
    is_model = cls is not Blip2Processor
    try:
        extra = {"output_loading_info": True} if is_model else {}
        loaded = cls.from_pretrained(location, **kwargs, **extra)
    except OSError as exc:
        if not source.local:
            raise ModelNotAvailable(_missing_message([location], source)) from None
        raise ModelNotAvailable(f"cannot load the checkpoint in {location}: {first_line(exc)}") from None
    except Exception as exc:  # corrupt weights, wrong architecture: whatever the loader raised
        raise ModelNotAvailable(f"cannot load the checkpoint in {location}: {first_line(exc)}") from None
    if not is_model:
        return loaded
    model, info = loaded
    if info["missing_keys"]:
        # transformers would fill them with random values: refuse rather than search with noise.
        missing = sorted(info["missing_keys"])
        raise ModelNotAvailable(
            f"the checkpoint in {location} is not a {cls.__name__}: {len(missing)} weights are missing "
            f"(first: {missing[0]})"
        )
    return model


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _missing_message(repos: list[str], source: ModelSource) -> str:
    commands = " and ".join(f"`huggingface-cli download {repo}`" for repo in repos)
    return (
        f"model preset {source.name} needs {' and '.join(repos)}: not in the local Hugging Face "
        f"cache and cannot be downloaded here (offline); download with {commands} "
        "(`hf download` in newer huggingface_hub), or use `--model demo`, which works offline"
    )


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence per-load progress bars and the torchvision fallback notice while loading."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


IGNORED_PROCESSOR_KEYS = {"image_processor_type", "processor_class", "_processor_class"}


def processor_settings(processor) -> dict:
    """An image processor's settings, without the keys that name its class (two processors
    that preprocess alike compare equal)."""
    settings = processor.image_processor.to_dict()
    return {k: v for k, v in settings.items() if k not in IGNORED_PROCESSOR_KEYS}
