"""Percent averages, overall and per group, that the benchmark scorers share.

Place in the flow: evaluation.  The task parses each generated reply, scores every record (right /
wrong, or a VQA soft score), and these helpers turn the per-record values into the overall and
per-group percentages each benchmark reports.
"""

from collections import defaultdict


def percent(values):
    """The mean of `values` (booleans or scores in [0, 1]) in %, 0.0 for none."""
    values = [float(v) for v in values]
    return 100.0 * sum(values) / len(values) if values else 0.0


def percent_by(records, value, by):
    """{group: mean of `value(record)` in %} over the records that have the key `by` (sorted by group)."""
    groups = defaultdict(list)
    for record in records:
        if by in record:
            groups[record[by]].append(value(record))
    return {group: percent(groups[group]) for group in sorted(groups, key=str)}
