function(lr, dropout=0.1)
  { trainer: { optimizer: { lr: lr } }, model: { dropout: dropout } }
