// allennlp-optuna's example classifier (its config/imdb_optuna.jsonnet), pointed at the Debian
// package descriptions in data/debian_sections and shrunk to run on a CPU in seconds: a
// whitespace tokenizer (spaCy's would download a model), 2 epochs, Adam instead of SGD (2 epochs
// of SGD stay near chance). Hyperparameters are external variables, read the allennlp-optuna
// way: std.parseInt(std.extVar('name')) for integers, std.parseJson(std.extVar('name')) for floats.
local batch_size = 64;
local cuda_device = -1;  // snakesweep sets trainer.cuda_device per worker: 0 where a GPU is visible
local num_epochs = 2;
local seed = 42;  // snakesweep replaces the three seeds with each trial's seed

local embedding_dim = std.parseInt(std.extVar('embedding_dim'));
local dropout = std.parseJson(std.extVar('dropout'));
local lr = std.parseJson(std.extVar('lr'));
local max_filter_size = std.parseInt(std.extVar('max_filter_size'));
local num_filters = std.parseInt(std.extVar('num_filters'));
local output_dim = std.parseInt(std.extVar('output_dim'));
local ngram_filter_sizes = std.range(2, max_filter_size);

{
  numpy_seed: seed,
  pytorch_seed: seed,
  random_seed: seed,
  dataset_reader: {
    type: 'text_classification_json',
    tokenizer: {
      type: 'whitespace',
    },
    token_indexers: {
      tokens: {
        type: 'single_id',
        lowercase_tokens: true,
      },
    },
  },
  datasets_for_vocab_creation: ['train'],
  train_data_path: 'data/debian_sections/train.jsonl',
  validation_data_path: 'data/debian_sections/validation.jsonl',
  model: {
    type: 'basic_classifier',
    text_field_embedder: {
      token_embedders: {
        tokens: {
          embedding_dim: embedding_dim,
        },
      },
    },
    seq2vec_encoder: {
      type: 'cnn',
      embedding_dim: embedding_dim,
      ngram_filter_sizes: ngram_filter_sizes,
      num_filters: num_filters,
      output_dim: output_dim,
    },
    dropout: dropout,
  },
  data_loader: {
    shuffle: true,
    batch_size: batch_size,
  },
  trainer: {
    cuda_device: cuda_device,
    num_epochs: num_epochs,
    optimizer: {
      lr: lr,
      type: 'adam',
    },
    validation_metric: '+accuracy',
    callbacks: [
      { type: 'optuna_pruner' },  // allennlp-optuna's; accepted and idle here (the worker prunes)
    ],
  },
}
