"""One typed settings object, built explicitly by an entry point (never at import time).

Every field can come from the environment with the `BLIP2_SEARCH_` prefix
(`BLIP2_SEARCH_MODEL=/models/blip2`), and entry points override them with their flags. The
`Literal` types are the one list of each choice (the CLI's argparse choices, the API's
parameters and the library's checks read them), and `Precision` holds the one set of
precision defaults.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16", "float16", "int8"]
QueryDType = Literal["auto", "float32", "bfloat16"]
EncoderDType = Literal["auto", "same", "int8", "int8-weights"]
DecoderDType = Literal["auto", "same", "int8"]
IndexType = Literal["auto", "exact", "compressed"]
Sort = Literal["relevance", "newest", "oldest"]  # a search: by score, or the matches by date
Order = Literal["newest", "oldest", "path"]  # a listing of images (browse)


def choices(kind: object) -> tuple[str, ...]:
    """The values of a `Literal` type, in order: `choices(Device)` is ("auto", "cpu", "cuda")."""
    return get_args(kind)


@dataclass(frozen=True)
class Precision:
    """How each stage of the model runs. The defaults are the product's: the settings, the
    engine and the Ray workers take theirs from here."""

    dtype: DType = "auto"  # the weights: float16 on a GPU; on a CPU the faster of float32 and bfloat16
    query: QueryDType = "auto"  # text queries: bfloat16 for a float32 model on a CPU with bfloat16
    # matmul instructions, else the model's
    encoder: EncoderDType = "auto"  # the image encoder on a CPU: int8 where int8 is 1.5x faster, else
    # int8 weights computed in float32 (when the weights are float32), else the weights' dtype
    decoder: DecoderDType = "auto"  # the language model: int8 weights on a CPU, else `dtype`


DEFAULT_PRECISION = Precision()


def default_cache() -> Path:
    """$XDG_CACHE_HOME/blip2-search, else ~/.cache/blip2-search."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blip2-search"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLIP2_SEARCH_", extra="ignore")

    index: Path = Path(".blip2-search")  # the index folder: catalog, vector snapshot, thumbnails
    model: str | None = None  # a preset or a folder with retrieval/ and generation/; None: the index's
    database_url: str | None = None  # any SQLAlchemy URL; default: SQLite in the index folder
    device: Device = "auto"
    dtype: DType = DEFAULT_PRECISION.dtype  # each as `Precision` says
    query_dtype: QueryDType = DEFAULT_PRECISION.query
    encoder_dtype: EncoderDType = DEFAULT_PRECISION.encoder
    decoder_dtype: DecoderDType = DEFAULT_PRECISION.decoder
    batch_size: int | None = Field(default=None, ge=1, le=1024)  # images a batch; None: sized to memory
    max_memory: float | None = Field(default=None, gt=0)  # GB an indexing run may hold; None: the smaller
    # of 8 and half the machine's (`memory.memory_budget`)
    workers: int = Field(default=2, ge=0, le=64)  # image-decoding processes while indexing
    threads: int | None = Field(default=None, ge=1, le=1024)  # torch and FAISS threads; None: every core
    cache: Path = Field(default_factory=default_cache)  # int8 weights once quantized (`models.int8cache`)

    # The HTTP server
    host: str = "127.0.0.1"  # beyond loopback, write endpoints need api_key (refused without one)
    port: int = Field(default=8000, ge=1, le=65535)
    api_key: str | None = None  # when set, write endpoints need it in X-API-Key
    protect_reads: bool = False  # read endpoints need api_key too (refused without one); the page asks
    max_upload_mb: float = Field(default=20, gt=0)
    cors_origins: list[str] = []  # e.g. BLIP2_SEARCH_CORS_ORIGINS='["http://localhost:3000"]'
    queue_size: int = Field(default=8, ge=1, le=1024)  # model requests waiting before a 503

    @field_validator("model", "database_url", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`BLIP2_SEARCH_API_KEY=` (set, but empty, as compose passes an unset variable) means
        no key, not a key that is the empty string."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _reads_protected_by_a_key(self) -> Settings:
        """Protecting reads without a key would protect nothing: refused, not ignored."""
        if self.protect_reads and not self.api_key:
            raise ValueError("BLIP2_SEARCH_PROTECT_READS needs BLIP2_SEARCH_API_KEY: without a key reads "
                             "would be open to all")
        return self

    @property
    def memory_budget(self) -> int | None:
        """`max_memory` in bytes (None: the default budget)."""
        return None if self.max_memory is None else int(self.max_memory * 1e9)

    @property
    def precision(self) -> Precision:
        return Precision(self.dtype, self.query_dtype, self.encoder_dtype, self.decoder_dtype)

    @property
    def loopback_only(self) -> bool:
        """The server listens on this machine's loopback interface only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with non-None `overrides` on top; errors are one line."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(f"invalid {where}: {first['msg']}") from None
