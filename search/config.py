"""One typed settings object, built explicitly by an entry point (never at import time).

Every field can come from the environment with the `BLIP2_SEARCH_` prefix
(`BLIP2_SEARCH_MODEL=/models/blip2`), and entry points override them with their flags. The
`Literal` types are the one list of each choice: the CLI's argparse choices and the model
loader's checks read them.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16", "float16", "int8"]
QueryDType = Literal["auto", "float32", "bfloat16"]
EncoderDType = Literal["auto", "same", "int8"]
DecoderDType = Literal["auto", "same", "int8"]
IndexType = Literal["auto", "exact", "compressed"]


def choices(kind: object) -> tuple[str, ...]:
    """The values of a `Literal` type, in order: `choices(Device)` is ("auto", "cpu", "cuda")."""
    return get_args(kind)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLIP2_SEARCH_", extra="ignore")

    index: Path = Path(".blip2-search")  # the index folder: catalog, vector snapshot, thumbnails
    model: str | None = None  # a preset or a folder with retrieval/ and generation/; None: the index's
    database_url: str | None = None  # any SQLAlchemy URL; default: SQLite in the index folder
    device: Device = "auto"
    dtype: DType = "auto"  # float16 on a GPU; on a CPU the faster of float32 and bfloat16, measured
    query_dtype: QueryDType = "auto"  # auto: bfloat16 text queries on CPU
    encoder_dtype: EncoderDType = "auto"  # the image encoder's; auto: int8 weights on a CPU where faster
    decoder_dtype: DecoderDType = "auto"  # the language model's; auto: int8 weights on a CPU, else `dtype`
    batch_size: int | None = Field(default=None, ge=1, le=1024)  # images a batch; None: sized to memory
    workers: int = Field(default=2, ge=0, le=64)  # image-decoding processes while indexing
    threads: int | None = Field(default=None, ge=1, le=1024)  # torch and FAISS threads; None: every core

    # The HTTP server
    host: str = "127.0.0.1"  # beyond loopback, write endpoints need api_key (refused without one)
    port: int = Field(default=8000, ge=1, le=65535)
    api_key: str | None = None  # when set, write endpoints need it in X-API-Key
    protect_reads: bool = False  # when set with api_key, read endpoints need it too
    max_upload_mb: float = Field(default=20, gt=0)
    cors_origins: list[str] = []  # e.g. BLIP2_SEARCH_CORS_ORIGINS='["http://localhost:3000"]'
    queue_size: int = Field(default=8, ge=1, le=1024)  # model requests waiting before a 503

    @field_validator("model", "database_url", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`BLIP2_SEARCH_API_KEY=` (set, but empty, as compose passes an unset variable) means
        no key, not a key that is the empty string."""
        return None if isinstance(value, str) and not value.strip() else value

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
