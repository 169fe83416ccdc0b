// An allennlp-optuna style config: every hyperparameter is an external variable.
local batch_size = 64;
local cuda_device = -1;
local num_epochs = 15;
local seed = 42;

local embedding_dim = std.parseInt(std.extVar('embedding_dim'));
local dropout = std.parseJson(std.extVar('dropout'));
local lr = std.parseJson(std.extVar('lr'));
local max_filter_size = std.parseInt(std.extVar('max_filter_size'));
local num_filters = std.parseInt(std.extVar('num_filters'));
local activation = std.extVar("activation");
local ngram_filter_sizes = std.range(2, max_filter_size);

{
  numpy_seed: seed,
  pytorch_seed: seed,
  random_seed: seed,
  dataset_reader: { type: 'text_classification_json', tokenizer: { type: 'spacy' } },
  train_data_path: 'data/train.jsonl',
  validation_data_path: 'data/dev.jsonl',
  model: {
    type: 'basic_classifier',
    text_field_embedder: {
      token_embedders: { tokens: { type: 'embedding', embedding_dim: embedding_dim } },
    },
    seq2vec_encoder: {
      type: 'cnn',
      embedding_dim: embedding_dim,
      ngram_filter_sizes: ngram_filter_sizes,
      num_filters: num_filters,
      conv_layer_activation: activation,
    },
    dropout: dropout,
  },
  data_loader: { batch_size: batch_size, shuffle: true },
  trainer: {
    cuda_device: cuda_device,
    num_epochs: num_epochs,
    optimizer: { lr: lr, type: 'sgd' },
    validation_metric: '+accuracy',
  },
}
