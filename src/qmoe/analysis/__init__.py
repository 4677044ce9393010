"""Stages `aggregate` and `stats`: results tables, statistical tests, test families, claims and verdict rules."""
