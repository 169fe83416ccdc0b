if std.extVar('encoder') == 'cnn' then { model: 'cnn' } else { model: 'rnn' }
