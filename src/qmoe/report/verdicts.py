"""The claims verdict as the report says it: tables, counts and reports/verdicts.json, from the
verdict rows of `qmoe.report.claim_verdicts.judge`.

Each verdict is data (its verdict, an effect's direction and size, proxy, scope, power); it is put
into words once, here (`verdict_cell`). The paper's claims and our extensions are two tables, and
only the paper's claims are counted.
"""

from __future__ import annotations

import math

import pandas as pd

from qmoe.analysis.paper_claims import BY_ID, Claim
from qmoe.analysis.verdict import Effect, Rule, Verdict

PROTOCOLS = ("corrected", "faithful")  # always shown side by side, run or not
_JUDGED = (Verdict.REPRODUCED.value, Verdict.NOT_REPRODUCED.value, Verdict.INCONCLUSIVE.value)
_BANDS = (Rule.INTERVAL, Rule.INTERVAL_SIGNIFICANT)
SCOPE_FIELDS = ("runtime", "regime", "batch")  # latency verdicts: what was measured, how
POWER_NOTE = (
    "Power of an inconclusive verdict: the smallest band or margin at which its interval would "
    "have decided, and the units (test clips for cross-validated F1: with the Nadeau-Bengio "
    "correction more folds of the same clips cannot narrow the interval; folds otherwise) a "
    "decisive verdict would need: n x (W / W*)^2, W the interval's half-width (on the log scale "
    "for ratios), W* the half-width that decides at its centre. This assumes a normal "
    "approximation (the interval narrows as 1 / sqrt(n)) with the same spread per unit and the "
    "same estimate. 'By design': even centred on the paper's value (a band) or on no difference "
    "(equivalence, no gain, superiority), an interval this wide could not have decided; then the "
    "units are those that would decide there."
)


def _text(row: pd.Series, col: str) -> str:
    value = row.get(col, "")
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _num(row: pd.Series, col: str) -> float:
    value = row.get(col, math.nan)
    return float(value) if value is not None and pd.notna(value) else math.nan


def _ratio(effect: Effect, x: float) -> float:
    return {Effect.FALL: 1 - x, Effect.RISE: 1 + x}.get(effect, x)


def effect_text(row: pd.Series) -> str:
    """The estimate and its interval as the effect they are: 'x0.85 [x0.81, x0.91]'."""
    effect, est = Effect(row["effect"]), _num(row, "estimate")
    lo, hi = _num(row, "ci_low"), _num(row, "ci_high")
    if effect is Effect.DIFF:
        return f"{est:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    a, b = sorted((_ratio(effect, lo), _ratio(effect, hi)))
    return f"x{_ratio(effect, est):.2f} [x{a:.2f}, x{b:.2f}]"


def size_text(row: pd.Series) -> str:
    """Our size against the paper's, in the paper's units: '15.4 % vs 41 %'."""
    effect, est, paper = Effect(row["effect"]), _num(row, "estimate"), _num(row, "paper_value")
    if effect is Effect.FALL:
        return f"{100 * est:.1f} % vs {100 * paper:.3g} %"
    if effect is Effect.RISE:
        return f"{100 * est:+.1f} % vs {100 * paper:+.3g} %"
    if effect is Effect.RATIO:
        return f"x{est:.3g} vs x{paper:.3g}"
    return f"{est:+.4f} vs {paper:+.4f}"


def verdict_words(row: pd.Series) -> str:
    """The verdict in words: an effect claim's direction and size apart, a proxy named, and what
    was not computed under which protocol."""
    verdict = row["verdict"]
    if verdict == Verdict.NOT_COMPUTED.value:
        return f"**not computed under {row['protocol']}**"
    if verdict in _JUDGED and _text(row, "direction") and _text(row, "size"):
        words = (
            f"**direction {row['direction']}** ({effect_text(row)}), "
            f"**size {row['size']}** ({size_text(row)})"
        )
    else:
        words = f"**{verdict}**"
    proxy = _text(row, "proxy")
    return f"proxy ({proxy}): {words}" if proxy else words


def power_text(row: pd.Series) -> str:
    """An inconclusive verdict's power in one line; '' where it has no interval to size."""
    width, shown = _num(row, "power_half_width"), _num(row, "power_showable")
    if row["verdict"] != Verdict.INCONCLUSIVE.value or not math.isfinite(width):
        return ""
    rule = BY_ID[row["claim"]].judge.rule
    what = "a band of" if rule in _BANDS else "a margin of"
    design_point = "at the paper's value" if rule in _BANDS else "at no difference"
    pm = "" if rule is Rule.NO_GAIN else "±"  # no gain: one-sided
    stated = _num(row, "power_stated")
    text = f"{what} {pm}{shown:.3g} would decide (stated {pm}{stated:.3g})"
    design = bool(row.get("power_by_design", False))
    if design:
        text += "; inconclusive by design"
        cols, where = ("power_n_design", "power_design_half_width"), design_point
    else:
        cols, where = ("power_n_needed", "power_decisive_half_width"), "at this estimate"
    decisive = _num(row, cols[1])
    had, unit = _num(row, "power_n"), _text(row, "power_unit")
    if not decisive > 0:
        need = "no amount of data (the interval's centre sits on an edge)"
    elif math.isfinite(had):
        need = f"{_num(row, cols[0]):,.0f} {unit} (had {had:,.0f})"
    else:
        need = f"{(width / decisive) ** 2:.1f}x the data"
    return f"{text}: {need} would decide {where}"


def verdict_cell(row: pd.Series) -> str:
    """One protocol's verdict cell: words, scope, and an inconclusive verdict's power."""
    scope = _text(row, "scope")
    power = power_text(row)
    return (
        verdict_words(row)
        + (f" ({scope})" if scope else "")
        + (f"; power: {power}" if power else "")
    )


def _claim_label(claim: Claim, dataset: str, many: bool) -> str:
    return f"{claim.claim} [{claim.source}]" + (f" ({dataset})" if many else "")


def verdict_table(rows: pd.DataFrame, only: tuple[str, ...] = (), reasons: bool = True) -> str:
    """The claims table of `rows` (qmoe.report.claim_verdicts.judge over PROTOCOLS); `only`: these
    claims, in this order; `reasons`: with the reason column."""
    many = rows["dataset"].nunique() > 1
    if only:
        rows = rows[rows["claim"].isin(only)]
        rows = rows.iloc[rows["claim"].map(list(only).index).argsort(kind="stable")]
    head = ["Claim [abstract]", "Paper"] + [
        f"{h} ({p})" for p in PROTOCOLS for h in ("Ours", "Verdict")
    ]
    head += ["Reason"] if reasons else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (claim, d), part in rows.groupby(["claim", "dataset"], sort=False):
        spec, part = BY_ID[claim], part.set_index("protocol")
        cells = [_claim_label(spec, d, many), spec.paper]
        for p in PROTOCOLS:
            row = part.loc[p].copy()
            row["protocol"] = p
            cells += [str(row["ours"]), verdict_cell(row)]
        if reasons:
            reason = "; ".join(f"{p}: {part.loc[p, 'reason']}" for p in PROTOCOLS)
            if spec.judge.note and spec.judge.note not in reason:
                reason += f" ({spec.judge.note})"
            cells.append(reason)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the paper's claims, our extensions): only the first are counted."""
    ours = rows["extension"].astype(bool) if "extension" in rows else pd.Series(False, rows.index)
    return rows[~ours], rows[ours]


def verdict_tally(rows: pd.DataFrame) -> str:
    """'0 reproduced, 12 not reproduced, ...' over every verdict, in Verdict order."""
    counts = rows["verdict"].value_counts()
    return ", ".join(f"{counts.get(v.value, 0)} {v.value}" for v in Verdict)


def by_design(rows: pd.DataFrame) -> int:
    """Inconclusive verdicts the design could not have made decisive at the stated margin."""
    if "power_by_design" not in rows:
        return 0
    hit = (rows["verdict"] == Verdict.INCONCLUSIVE.value) & rows["power_by_design"].astype(bool)
    return int(hit.sum())


def reading_line(rows: pd.DataFrame) -> str:
    """How to read the counts: direction kept where the size is not, inconclusive by design."""
    verdict = rows["verdict"]
    missed = int((verdict == Verdict.NOT_REPRODUCED.value).sum())
    kept = int(
        ((verdict == Verdict.NOT_REPRODUCED.value) & (rows.get("direction") == "reproduced")).sum()
    )
    unsure = int((verdict == Verdict.INCONCLUSIVE.value).sum())
    return (
        f"Of the {missed} not reproduced, {kept} reproduce the paper's direction but not its "
        f"size; {by_design(rows)} of the {unsure} inconclusive verdicts are inconclusive by "
        "design (the interval this design gives is wider than the stated band or margin even "
        "at the paper's value or no difference)."
    )


def verdict_markdown(rows: pd.DataFrame) -> str:
    """The claims table, its counts and power note, then our extensions apart."""
    paper, ours = split(rows)
    out = verdict_table(paper) + (
        f"\nVerdicts over claims x protocols: {verdict_tally(paper)}. {reading_line(paper)}\n\n"
        f"{POWER_NOTE}\n"
    )
    if ours.empty:
        return out
    return out + (
        "\n### Our extensions\n\nRows the paper did not claim (our route vs its placebo, judged "
        "against the paper's numbers for curiosity vs the plain MoE): shown for what they tell, "
        "not counted with the paper's verdicts.\n\n"
        + verdict_table(ours)
        + f"\nVerdicts: {verdict_tally(ours)}.\n"
    )


# --- reports/verdicts.json ---------------------------------------------------------------------


def _json_num(x: float) -> float | None:
    return round(float(x), 6) if x is not None and math.isfinite(float(x)) else None


def _entry(row: pd.Series) -> dict:
    """One verdict as JSON: its parts, its scope and, inconclusive, its power."""
    entry = {
        "verdict": row["verdict"],
        "direction": _text(row, "direction") or None,
        "size": _text(row, "size") or None,
        "proxy": _text(row, "proxy") or None,
        "scope": {
            "dataset": row["dataset"],
            **{k: _text(row, k) for k in SCOPE_FIELDS},
            "note": _text(row, "scope"),
        },
    }
    if row["verdict"] == Verdict.INCONCLUSIVE.value and math.isfinite(
        _num(row, "power_half_width")
    ):
        keys = ("showable", "stated", "n", "n_needed", "n_design")
        entry["power"] = {k: _json_num(_num(row, f"power_{k}")) for k in keys} | {
            "unit": _text(row, "power_unit"),
            "by_design": bool(row.get("power_by_design", False)),
        }
    return entry


def verdict_metrics(rows: pd.DataFrame) -> dict:
    """The claims verdict as DVC metrics, so `dvc metrics diff` and `dvc exp show` show what a
    knob does to the study's conclusion: per dataset and protocol, the count of each verdict
    over the paper's claims (every Verdict, zeros included), how many inconclusive ones are so
    by design, and each claim's and extension's verdict with its parts and scope."""
    out: dict = {}
    for (d, p), part in rows.groupby(["dataset", "protocol"], sort=True):
        paper, ours = split(part)
        counts = paper["verdict"].value_counts()
        out.setdefault(d, {})[p] = {
            "counts": {v.value.replace(" ", "_"): int(counts.get(v.value, 0)) for v in Verdict},
            "inconclusive_by_design": by_design(paper),
            "claims": {r["claim"]: _entry(r) for _, r in paper.iterrows()},
            "extensions": {r["claim"]: _entry(r) for _, r in ours.iterrows()},
        }
    return out
