"""Duplicate-free batches of rows of similar length, for in-batch-negative losses (MNRL).

The trainer pads every text column of a batch to its longest text, so random batches of
(query, document) pairs waste 20-50% of their tokens on padding on the packaged tasks. As with
`NoDuplicatesBatchSampler`, each epoch shuffles the rows with the trainer's seed, and batches hold
no two rows that share a text; here the shuffled rows are sorted by length within
windows of `window` batches and cut into consecutive batches, a row that repeats a text of its
batch is swapped with a row of the nearest batch where it repeats none (frequent documents, whose
queries all have one length, would otherwise pile up), and the finished batches are shuffled
again: a batch holds rows of similar length drawn from a random window of the data. Every row is
yielded exactly once per epoch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

WINDOW_BATCHES = 16  # random batches of the packaged tasks are 20-51% padding; windows of 16 cut padded tokens 6-28%


def row_lengths(dataset, tokenizer, max_seq_length: int) -> list[int]:
    """Tokens per row as the trainer will embed it: every text column, each truncated to `max_seq_length`."""
    totals = [0] * len(dataset)
    for column in dataset.column_names:
        texts = dataset[column]
        if not texts or not isinstance(texts[0], str):
            continue
        ids = tokenizer(list(texts), truncation=True, max_length=max_seq_length)["input_ids"]
        totals = [total + len(row) for total, row in zip(totals, ids)]
    return totals


class LengthGroupedNoDuplicatesSampler(DefaultBatchSampler):
    def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns=None, generator=None, seed: int = 0,
                 lengths: Sequence[int] = (), window: int = WINDOW_BATCHES):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(dataset)} rows")
        columns = [c for c in dataset.column_names if c not in set(valid_label_columns or [])]
        self.row_texts = [frozenset(str(value) for value in row) for row in zip(*(dataset[c] for c in columns))]
        self.lengths, self.window = list(lengths), window

    def __len__(self) -> int:
        rows = len(self.row_texts)
        return rows // self.batch_size if self.drop_last else (rows + self.batch_size - 1) // self.batch_size

    def _batches(self, generator: torch.Generator) -> list[list[int]]:
        """Shuffle; per window, sort by length, cut consecutive batches and swap duplicates apart.

        A window holds whole batches: rows beyond a multiple of the batch size, and rows that no swap
        could place, move on to the next window. What is left at the end is cut greedily into
        duplicate-free batches, as `NoDuplicatesBatchSampler` does.
        """
        order = torch.randperm(len(self.row_texts), generator=generator).tolist()
        span = self.batch_size * self.window
        batches, carry = [], []
        for start in range(0, len(order), span):
            pool = carry + order[start:start + span]
            whole = len(pool) - len(pool) % self.batch_size
            rows, carry = sorted(pool[:whole], key=lambda row: self.lengths[row]), pool[whole:]  # stable: ties stay shuffled
            window = [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
            carry = self._separate_duplicates(window) + carry
            batches += [batch for batch in window if batch]
        carry = self._fill_holes(batches, carry)
        while carry:
            batch, carry = self._fill(carry)
            batches.append(batch)
        return batches

    def _fill_holes(self, batches: list[list[int]], rows: list[int]) -> list[int]:
        """Put each row into the first short batch that lacks its texts (a hole left by a row no swap could place); returns the rest."""
        short = [(batch, set().union(*(self.row_texts[r] for r in batch))) for batch in batches if len(batch) < self.batch_size]
        rest = []
        for row in rows:
            for batch, texts in short:
                if len(batch) < self.batch_size and texts.isdisjoint(self.row_texts[row]):
                    batch.append(row)
                    texts |= self.row_texts[row]
                    break
            else:
                rest.append(row)
        return rest

    def _separate_duplicates(self, window: list[list[int]]) -> list[int]:
        """Swap each row that repeats a text of its batch with the nearest batch's row that fits both; returns rows that fit nowhere."""
        unplaced = []
        for b, batch in enumerate(window):
            seen: set[str] = set()
            kept = []
            for row in batch:
                if seen.isdisjoint(self.row_texts[row]):
                    kept.append(row)
                else:
                    swapped = self._swap(window, b, row, seen)
                    if swapped is None:
                        unplaced.append(row)
                        continue
                    kept.append(swapped)
                    row = swapped
                seen |= self.row_texts[row]
            window[b] = kept
        return unplaced

    def _swap(self, window: list[list[int]], b: int, row: int, seen: set[str]) -> int | None:
        """Put `row` into the batch nearest to `b` (in length) where it repeats no text, in exchange for a row `b` can take."""
        texts = self.row_texts[row]
        for distance in range(1, len(window)):
            for other in (b - distance, b + distance):
                if not 0 <= other < len(window):
                    continue
                counts = Counter(text for member in window[other] for text in self.row_texts[member])
                for j, candidate in enumerate(window[other]):
                    own = self.row_texts[candidate]
                    if seen.isdisjoint(own) and all(counts[t] - (t in own) == 0 for t in texts):
                        window[other][j] = row
                        return candidate
        return None

    def _fill(self, pool: list[int]) -> tuple[list[int], list[int]]:
        """The first rows of `pool` that share no text, up to a batch; and the rows left, in order."""
        batch, texts, rest = [], set(), []
        for position, row in enumerate(pool):
            if len(batch) == self.batch_size:
                return batch, rest + pool[position:]
            if texts.isdisjoint(self.row_texts[row]):
                batch.append(row)
                texts |= self.row_texts[row]
            else:
                rest.append(row)
        return batch, rest

    def __iter__(self) -> Iterator[list[int]]:
        generator = self.generator or torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        batches = self._batches(generator)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[index]
