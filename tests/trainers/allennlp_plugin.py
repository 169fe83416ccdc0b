"""AllenNLP components registered on import, for the `include_package` and resume tests."""

from __future__ import annotations

import time
from typing import Any

from allennlp.modules.seq2vec_encoders import BagOfEmbeddingsEncoder, Seq2VecEncoder
from allennlp.training.callbacks import TrainerCallback


@Seq2VecEncoder.register("snakesweep-test-mean")
class MeanEncoder(BagOfEmbeddingsEncoder):
    """The averaged bag of embeddings, under a name only this module registers."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__(embedding_dim=embedding_dim, averaged=True)


@TrainerCallback.register("snakesweep-test-slow")
class SlowBatches(TrainerCallback):
    """Sleeps `sleep_s` after each training batch, so a test can stop a trial mid-epoch; prints
    `training epoch N` at an epoch's first trained batch (batches a resumed run skips are not)."""

    def __init__(self, serialization_dir: str, sleep_s: float = 0.2) -> None:
        super().__init__(serialization_dir)
        self.sleep_s = sleep_s
        self.announced: set[int] = set()

    def on_batch(self, trainer: Any, batch_inputs: Any, batch_outputs: Any, batch_metrics: Any, epoch: int,
                 batch_number: int, is_training: bool, is_primary: bool = True, **kwargs: Any) -> None:
        if not is_training:
            return
        if epoch not in self.announced:
            self.announced.add(epoch)
            print(f"training epoch {epoch}", flush=True)
        time.sleep(self.sleep_s)
