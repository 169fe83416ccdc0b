// Shared pieces, imported relative to the including file.
{
  reader: { type: 'text_classification_json' },
  layers(n, size):: [{ size: size } for _ in std.range(1, n)],
}
