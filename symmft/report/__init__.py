"""The report stage: one command's analysis of a cell, written as HTML, Markdown and JSON (:mod:`symmft.report.build`)."""
