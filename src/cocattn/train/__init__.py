"""The trainer: one loop for one process, DDP and FSDP2 (under ``torchrun``).

``train(config, run_dir)`` trains a GPT on a data directory with AdamW, warm-up then cosine or
linear decay, gradient clipping and accumulation, bf16 autocast on CUDA (fp32 on CPU), optional
``torch.compile``; it writes ``run_dir/metrics.jsonl``, atomic checkpoints every
``train.checkpoint_interval`` steps (``run_dir/checkpoints/``) and the final model directory
``run_dir/model/``. ``resume=True`` continues from the newest checkpoint with the model,
optimizer, schedule, RNG and data position restored, so the run is bit-identical on CPU (fp32)
to one that was never interrupted.

Batches: every step draws one *global* batch of ``train.batch_size`` rows from a generator that
is identical on every rank; rank r takes its contiguous share and splits it into
``train.grad_accum`` micro-batches. Gradients are averaged over ranks (DDP / FSDP) and micro-steps,
so a step sees the same rows and, up to float summation order, the same update at any world size.

Continued training (``train.init_from``, ``train.stage``): instead of a new GPT the run starts from
a saved model, a cocattn model directory or a Hugging Face causal LM (``coca_llama`` from
``cocattn convert llama``, or a plain LLaMA for a RoPE baseline). ``train.stage`` freezes all but
the paper's stage set (:func:`trainable_parameters_for_stage`) before the optimizer is
built, so frozen weights are not in it. A Hugging Face model is trained on
``model(input_ids=x).logits`` against the trainer's shifted targets, checkpointed and resumed
(exactly, as native runs) with the same machinery, and saved at the end with ``save_pretrained``
plus its tokenizer files, so ``run_dir/model`` loads with ``AutoModelForCausalLM`` and the
evaluators. FSDP is refused for Hugging Face models (DDP is not refused, but untested with them).
transformers is imported only for a Hugging Face model: a native run does not need it.

The modules, one concept each:

- :mod:`.loop`: :func:`train` and the step loop (one step, the NaN guard, the cadence, the end);
- :mod:`.setup`: a run set up before its first step; :mod:`.session`: what a run holds;
- :mod:`.distributed`: process group, device, autocast, DDP / FSDP2, collectives;
- :mod:`.batches`: the global batches and each rank's micro-batches;
- :mod:`.schedule`: learning rate and AdamW groups; :mod:`.loss`: training and validation loss;
- :mod:`.init_from`: the initial model of continued training, the Hugging Face model directory;
- :mod:`.stages`: the paper's stage sets (which weights train);
- :mod:`.state`: resume checks, optimizer state, checkpoints, the final model directory;
- :mod:`.rundir`: the run directory (its entries, refusal of a foreign one, the lock);
- :mod:`.metrics`: ``metrics.jsonl``, TensorBoard, the progress bar;
- :mod:`.result`: :class:`TrainResult`; :mod:`.throughput`: :func:`train_throughput`.
"""

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
