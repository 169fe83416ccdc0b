{ type: 'basic_classifier', encoder: std.extVar('encoder') }
