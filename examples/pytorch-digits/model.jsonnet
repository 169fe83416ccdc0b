// The digits MLP, read by train.py. External-variable style, as allennlp-optuna configs are
// written: each swept value arrives as std.extVar('name') (numbers as JSON text, hence
// std.parseJson; strings as they are). Render one by hand with
//   snakesweep render examples/pytorch-digits/model.jsonnet --params '{"hidden_size": 64, "num_layers": 1, "dropout": 0.1, "optimizer": "adam", "lr": 0.01, "batch_size": 64}'
local optimizer = std.extVar('optimizer');

{
  model: {
    hidden_size: std.parseJson(std.extVar('hidden_size')),
    num_layers: std.parseJson(std.extVar('num_layers')),
    dropout: std.parseJson(std.extVar('dropout')),
  },
  // Jsonnet is lazy: momentum is read (and must be set) only when the optimizer is SGD,
  // which is exactly when the search space samples it.
  optimizer: { type: optimizer, lr: std.parseJson(std.extVar('lr')) }
             + (if optimizer == 'sgd' then { momentum: std.parseJson(std.extVar('momentum')) } else {}),
  data_loader: { batch_size: std.parseJson(std.extVar('batch_size')) },
  trainer: { num_epochs: 12 },
  random_seed: 13,  // replaced by each trial's seed (model.seed_keys in config.yaml)
}
