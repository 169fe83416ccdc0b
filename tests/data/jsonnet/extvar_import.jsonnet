local model = import 'model.libsonnet';
{ model: model, trainer: { optimizer: { lr: std.parseJson(std.extVar('lr')) } } }
