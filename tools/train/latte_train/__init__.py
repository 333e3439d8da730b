"""Reference trainer and exporter for Causal Latte byte-level language models."""
