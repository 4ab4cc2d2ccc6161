"""Model presets: a name for a (retrieval, generation) pair of checkpoints.

`--model` takes a preset name or a local folder holding `retrieval/` and `generation/`
HF checkpoints. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotAvailable

RETRIEVAL_HUB_ID = "Salesforce/blip2-itm-vit-g"
# The demo model ships with the distribution, in the demo world's package beside this one; its
# folder is found, not imported: production code never imports the demo world.
DEMO_FOLDER = Path(__file__).resolve().parent.parent / "demo" / "model"


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the index records: the preset name or the folder's resolved path
    retrieval: str  # hub id or local folder
    generation: str
    local: bool


PRESETS: dict[str, ModelSource] = {
    name: ModelSource(name, RETRIEVAL_HUB_ID, f"Salesforce/{name}", local=False)
    for name in ("blip2-opt-2.7b", "blip2-opt-6.7b", "blip2-flan-t5-xl")
}
DEFAULT_PRESET = "blip2-opt-2.7b"


def resolve(spec: str) -> ModelSource:
    """Turn `--model` into checkpoint locations, or raise a one-line error."""
    if spec == "demo":
        if not (DEMO_FOLDER / "generation" / "config.json").is_file():
            raise ModelNotAvailable(
                f"the demo model is missing from this installation ({DEMO_FOLDER}); "
                "`make demo-model` trains it"
            )
        retrieval, generation = DEMO_FOLDER / "retrieval", DEMO_FOLDER / "generation"
        return ModelSource("demo", str(retrieval), str(generation), local=True)
    if spec in PRESETS:
        return PRESETS[spec]
    folder = Path(spec).expanduser()
    if folder.is_dir():
        missing = [part for part in ("retrieval", "generation") if not (folder / part).is_dir()]
        if missing:
            raise ModelNotAvailable(
                f"model folder {folder} has no {' or '.join(p + '/' for p in missing)}: "
                "it must hold retrieval/ and generation/ Hugging Face checkpoints"
            )
        unconfigured = [p for p in ("retrieval", "generation") if not (folder / p / "config.json").is_file()]
        if unconfigured:
            # Without config.json transformers would build a full-size random model instead.
            raise ModelNotAvailable(f"model folder {folder}/{unconfigured[0]} has no config.json")
        root = folder.resolve()
        return ModelSource(str(root), str(root / "retrieval"), str(root / "generation"), local=True)
    raise ModelNotAvailable(
        f"unknown model {spec!r}: use a preset ({', '.join([*PRESETS, 'demo'])}) "
        "or a folder holding retrieval/ and generation/ checkpoints"
    )
