// The top level is an object, though functions are defined before it.
local scale = function(x) x * 10;
local lr = std.parseJson(std.extVar('lr'));
{ trainer: { optimizer: { lr: lr, warmup: scale(1) } } }
