"""Question -> plan -> SQL: semantic layer, parser, compiler, explanations, evaluation."""
