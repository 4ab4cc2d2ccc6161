"""Texts and questions the parity, batching and precision tests ask of every engine."""

TEXTS = ["a red circle", "a small blue square on a white background", "star", "two shapes"]
QUESTIONS = ["what color is the circle?", "how many shapes are there?", "is there a star?",
             "what shape is red?", "what color is the background?", "is there a blue square?",
             "what color is the star?", "how many?"]
