"""The precisions the tests load engines in (`search.config.Precision`). The product's
defaults pick each stage's precision on the machine; tests that compare numbers need them
fixed."""

from __future__ import annotations

from dataclasses import replace

from search.config import Precision

FLOAT32 = Precision(dtype="float32", encoder="same", decoder="same")  # text queries as the product runs them
EXACT = replace(FLOAT32, query="float32")  # every stage in float32: what parity with transformers checks
