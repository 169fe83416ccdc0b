// A text classifier for Debian package descriptions (12 sections), in allennlp-optuna's style:
// every swept value arrives as an external variable.
local embedding_dim = std.parseJson(std.extVar('embedding_dim'));
local encoder_type = std.extVar('encoder');
local dropout = std.parseJson(std.extVar('dropout'));
local lr = std.parseJson(std.extVar('lr'));
local batch_size = std.parseJson(std.extVar('batch_size'));

// Jsonnet is lazy: a size is read only on the branch of the encoder that uses it.
local encoder =
  if encoder_type == 'boe' then
    { type: 'bag_of_embeddings', embedding_dim: embedding_dim, averaged: true }
  else if encoder_type == 'cnn' then
    {
      type: 'cnn',
      embedding_dim: embedding_dim,
      num_filters: std.parseJson(std.extVar('num_filters')),
      ngram_filter_sizes: [2, 3],
    }
  else
    {
      type: encoder_type,  // lstm or gru
      input_size: embedding_dim,
      hidden_size: std.parseJson(std.extVar('hidden_size')),
      bidirectional: true,
    };

{
  dataset_reader: {
    type: 'text_classification_json',
    tokenizer: { type: 'whitespace' },
    token_indexers: { tokens: { type: 'single_id', lowercase_tokens: true } },
    max_sequence_length: 80,
  },
  train_data_path: 'data/debian_sections/train.jsonl',
  validation_data_path: 'data/debian_sections/validation.jsonl',
  vocabulary: { min_count: { tokens: 2 } },
  model: {
    type: 'basic_classifier',
    text_field_embedder: {
      token_embedders: { tokens: { type: 'embedding', embedding_dim: embedding_dim } },
    },
    seq2vec_encoder: encoder,
    dropout: dropout,
  },
  data_loader: { batch_sampler: { type: 'bucket', batch_size: batch_size, sorting_keys: ['tokens'] } },
  validation_data_loader: { batch_sampler: { type: 'bucket', batch_size: 128, sorting_keys: ['tokens'] } },
  trainer: {
    optimizer: { type: 'adam', lr: lr },
    num_epochs: 8,
    validation_metric: '+accuracy',
    cuda_device: -1,
  },
}
