"""Stages `aggregate` and `stats`: the runs table, statistical tests, test families, paper and
reference tables, claims and verdict rules."""
