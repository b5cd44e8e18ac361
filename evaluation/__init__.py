"""The paper's evaluation (arXiv 2405.17965, Sec. IV-A) as a command: a grid of (method, image, seed) cells, each
trained, sampled and scored, summarised in a report with plots.

Imports the core; the core never imports this package.
"""
