"""The passkey task's wording (the paper's, from landmark attention's script), in one place: the
evaluation prompt (:mod:`cocattn.evaluate.passkey`) and the training warm-up rows
(:mod:`cocattn.tasks.warmup`) both use it, so that what a model learns to retrieve during the
warm-up is asked in the same words at evaluation."""

TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY_LINE = "The passkey is {key}. Remember it. {key} is the passkey."
QUESTION = "What is the passkey?"
ANSWER_PREFIX = "The passkey is"
