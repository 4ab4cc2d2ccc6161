"""What a picture holds: decoding it safely (`images`), its layout as a perceptual hash
(`picturehash`), the text written in it (`ocr`) and whether that text holds what a user
typed (`textmatch`; `needles`: what a catalog looks for to find every such text). numpy,
Pillow and the OCR reader only (an import-linter contract): decoding workers import it
without torch, FAISS or SQLAlchemy.
"""
