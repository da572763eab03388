"""Benchmarks of vocloud against the targets named in issues; each prints ratios."""
