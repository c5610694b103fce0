"""The trainer: ``train(config, run_dir)`` trains a GPT (or continues a saved model,
``train.init_from``) on a data directory, in one process or under ``torchrun`` (DDP, FSDP2), writing
metrics, atomic checkpoints and the final model into ``run_dir``; ``resume=True`` continues exactly.
docs/TRAINING.md describes the batches, continued training and the modules."""

from cocattn.train.init_from import HF_RUN_FILE
from cocattn.train.loop import NonFiniteLossError, train
from cocattn.train.result import TrainResult
from cocattn.train.rundir import METRICS_FILE, MODEL_DIR, RESULT_FILE, RUN_ENTRIES
from cocattn.train.schedule import learning_rate, param_groups
from cocattn.train.stages import STAGES, stage_of_parameter, trainable_parameters_for_stage
from cocattn.train.throughput import train_throughput

__all__ = [
    "train",
    "train_throughput",
    "TrainResult",
    "NonFiniteLossError",
    "learning_rate",
    "param_groups",
    "STAGES",
    "stage_of_parameter",
    "trainable_parameters_for_stage",
    "METRICS_FILE",
    "RESULT_FILE",
    "MODEL_DIR",
    "HF_RUN_FILE",
    "RUN_ENTRIES",
]
