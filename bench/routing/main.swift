// Replaced by the routing micro-benchmark in the next commit.
print("routing-bench: not yet implemented")
