// The digits MLP of examples/pytorch-digits, written hyper.py-style: every swept value is a
// top-level argument with a default, so the file renders on its own (jsonnet model.jsonnet) and
// snakesweep calls the function with each grid point. It renders to the config shape that
// examples/pytorch-digits/train.py reads.
function(lr=0.01, hidden_size=64, dropout=0.1, num_layers=1, batch_size=64, num_epochs=12)
{
  model: { hidden_size: hidden_size, num_layers: num_layers, dropout: dropout },
  optimizer: { type: 'adam', lr: lr },
  data_loader: { batch_size: batch_size },
  trainer: { num_epochs: num_epochs },
  random_seed: 13,  // replaced by each run's seed: a new one for every repeat
}
