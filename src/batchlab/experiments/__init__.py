"""The experiments built from many runs: the lecture, Keskar's generalization gap, the
large-batch methods and the advisor."""
