"""An AllenNLP component registered on import, for the `include_package` test."""

from __future__ import annotations

from allennlp.modules.seq2vec_encoders import BagOfEmbeddingsEncoder, Seq2VecEncoder


@Seq2VecEncoder.register("snakesweep-test-mean")
class MeanEncoder(BagOfEmbeddingsEncoder):
    """The averaged bag of embeddings, under a name only this module registers."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__(embedding_dim=embedding_dim, averaged=True)
