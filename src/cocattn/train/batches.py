"""The batch source: every step draws one *global* batch of ``train.batch_size`` rows from a
generator that is identical on every rank; rank r takes its contiguous share and splits it into
``train.grad_accum`` micro-batches. A share of the rows can be retrieval rows (passkey and the
RULER-style tasks, ``data.retrieval_fraction``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cocattn.config import RunConfig
from cocattn.train.distributed import Dist


class Batches:
    """Global batches from the data directory, drawn with one generator shared by all ranks."""

    def __init__(self, run: RunConfig, seq_len: int, dist_info: Dist, device: torch.device):
        from cocattn.data.read.batches import sample_batch
        from cocattn.tasks.warmup import mix_retrieval_rows
        from cocattn.data.read.shards import load_tokens, verify_file
        from cocattn.data.read.tokenizer import load_tokenizer

        data_dir = _checked_data_dir(run.data.dir)
        self._sample, self._mix = sample_batch, mix_retrieval_rows
        self.data_dir = data_dir
        self.train = load_tokens(data_dir, "train")
        self.val = load_tokens(data_dir, "val")
        verify_file(data_dir, "tokenizer.json")  # a tokenizer that differs from the manifest's is refused
        self.tokenizer = load_tokenizer(data_dir)
        self.seq_len = seq_len
        self.dist = dist_info
        self.device = device
        self.retrieval_fraction = run.data.retrieval_fraction
        self.retrieval_tasks = list(run.data.retrieval_tasks)
        for split, tokens in (("train", self.train), ("val", self.val)):
            if len(tokens) < seq_len + 2:
                raise ValueError(
                    f"{data_dir}: the {split} split has {len(tokens)} tokens, fewer than "
                    f"model.max_seq_len + 2 = {seq_len + 2}"
                )
        if self.retrieval_fraction > 0:  # fail now, not at the first retrieval row
            self._check_retrieval_rows_fit()

    def _check_retrieval_rows_fit(self) -> None:
        from cocattn.tasks.warmup import PASSKEY, make_retrieval_row, make_task_row

        seq_len = self.seq_len
        for task in self.retrieval_tasks:
            try:
                for seed in range(4):  # cases differ in length: try a few
                    if task == PASSKEY:
                        make_retrieval_row(torch.Generator().manual_seed(seed), self.tokenizer, self.train, seq_len)
                    else:
                        make_task_row(torch.Generator().manual_seed(seed), self.tokenizer, self.train, seq_len, task)
            except ValueError as err:
                raise ValueError(
                    f"model.max_seq_len={seq_len} is not valid with data.retrieval_fraction="
                    f"{self.retrieval_fraction} and data.retrieval_tasks={self.retrieval_tasks}: a "
                    f"{task} row does not fit ({err}); raise model.max_seq_len, drop the task or "
                    "give it fewer keys / values / hops"
                ) from None

    def global_batch(
        self, tokens: np.ndarray, batch_size: int, generator: torch.Generator, retrieval: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._sample(tokens, batch_size, self.seq_len, generator)
        if retrieval and self.retrieval_fraction > 0:
            x, y = self._mix(x, y, self.retrieval_fraction, self.tokenizer, tokens, generator, self.retrieval_tasks)
        return x, y

    def local_micro_batches(
        self, x: torch.Tensor, y: torch.Tensor, grad_accum: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        share = x.shape[0] // self.dist.world
        lo = self.dist.rank * share
        x, y = x[lo : lo + share], y[lo : lo + share]
        micro = share // grad_accum
        return [
            (
                x[i * micro : (i + 1) * micro].to(self.device, non_blocking=True),
                y[i * micro : (i + 1) * micro].to(self.device, non_blocking=True),
            )
            for i in range(grad_accum)
        ]


def _checked_data_dir(data_dir: str | None) -> str:
    if not data_dir:
        raise ValueError(
            "data.dir=None is not valid: expected the directory written by "
            "`cocattn data build` (pass --data DIR or data.dir=DIR)"
        )
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data directory {data_dir} does not exist (build it with `cocattn data build`)")
    return data_dir
