"""blip2-search: the engine, a library.

Modules: config (settings), presets (model names), images (safe decoding), prompts (VQA
text), models (BLIP-2 behind a small batched interface), errors. Importing this package
loads no model and imports no torch.
"""

__version__ = "0.1.0"
