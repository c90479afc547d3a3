"""Declared pipelines: which stages exist, what each reads and writes, which parameters it uses."""
