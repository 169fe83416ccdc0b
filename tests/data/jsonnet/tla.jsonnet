/* A hyper.py style config: hyperparameters are top-level arguments.
   function(this_is_a_comment) should not confuse detection. */
# hash comment
local base = import 'base.libsonnet';
local helper(x) = x * 2;

function(lr=0.001, dropout=0.25, encoder='lstm', bidirectional=true, extra=null, num_layers=2)
  {
    dataset_reader: base.reader,
    model: {
      dropout: dropout,
      encoder: { type: encoder, bidirectional: bidirectional },
      layers: base.layers(num_layers, helper(8)),
      extra: extra,
    },
    trainer: { num_epochs: 3, optimizer: { type: 'adam', lr: lr } },
  }
