"""reports/report.md: the sections of `qmoe.report.sections` put together, plus the statistical
tests.

`render` takes only generated inputs (runs table, stats CSVs, claims evidence, figure paths, paper
tables, provenance) and returns the Markdown; the report stage writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from qmoe.analysis.names import Table
from qmoe.analysis.verdict import VerdictConfig
from qmoe.io import require
from qmoe.report import (
    claim_verdicts,
    deployment,
    latency,
    leakage,
    routing,
    stat_tests,
    summary,
    tables,
)
from qmoe.report.sections import (
    not_computed,
    routing_section,
    side_by_side,
    variant_table,
    what_was_run,
)
from qmoe.report.verdicts import PROTOCOLS, verdict_markdown


class FigureRef(NamedTuple):
    path: str  # PNG, relative to report.md
    caption: str  # one line: what to look at (qmoe.report.figures.FIGURES)


class Document(NamedTuple):
    runs: pd.DataFrame
    stats_tables: dict[str, pd.DataFrame]
    evidence: pd.DataFrame
    stats_config: dict  # stats.json "config"
    methods: dict  # stats.json "methods"
    verdict_cfg: VerdictConfig
    figures: list[FigureRef]
    paper_tables: list[tables.Table]
    tables_dir: str  # relative to report.md
    provenance: str  # markdown
    protocols: dict[str, list[str]] = {}  # protocol -> its describe() lines (training.protocols)
    devices: list[dict] = []  # device.json records (qmoe.report.provenance.devices)
    deployed: deployment.DeployedForm | None = None  # params `export` (graph form)
    leaks: list[leakage.Leak] = []  # same-recording siblings across each protocol's split
    commit: str = ""  # the code's git commit, as provenance names it


def verdicts(doc: Document) -> pd.DataFrame:
    """The claims verdict rows (qmoe.report.claim_verdicts.judge) over both protocols."""
    alpha = doc.stats_config["alpha"]
    return claim_verdicts.judge(doc.evidence, doc.verdict_cfg, alpha, PROTOCOLS)


def summary_text(doc: Document) -> str:
    """The opening summary; reports/summary.md and the README carry the same text."""
    return summary.markdown(verdicts(doc), doc.runs, doc.devices, doc.commit)


def rules_text(doc: Document) -> str:
    """How the verdicts are reached and worded (fixed before the results)."""
    f1, alpha, v = doc.stats_config["f1_metric"], doc.stats_config["alpha"], doc.verdict_cfg
    return (
        f"Rules (fixed before the results): F1 = `{f1}`; alpha = {alpha}; TOST margin = "
        f"±{doc.stats_config['tost_margin']}; values within ±{v.proportion_tol} (proportions), "
        f"±{v.ratio_tol} (F1 ratio), ±{v.f1_tol} (F1), ±{100 * v.rel_tol:.0f} % (exact "
        f"quantities) or ±{v.log10_tol} order(s) of magnitude of the paper. 'Reproduced' needs "
        "the whole confidence interval inside that band (and the claimed test significant after "
        "Holm); an interval clear of it is 'not reproduced'; anything else 'inconclusive'. A "
        "band that contains the no-effect value also needs a significant test in the paper's "
        "direction. A claim of an effect (a saving, a reduction, an overhead) is judged twice: "
        "its direction (the interval clear of no effect on the paper's side) and its size (the "
        "band); the counts take the claim as stated (its size, and its test where one is "
        "claimed). A claim judged through another measurand says 'proxy' (latency for energy). "
        "Effects are printed in the paper's direction and words ('variance x2.02, not a "
        "reduction'). Counts at fixed shapes 'hold by arithmetic' (not an experimental result). "
        "'Not testable here': this machine or study cannot measure it (no power counter, data "
        "only from the paper's authors); 'not computed under <protocol>': measurable here, not "
        "computed under that protocol. Accuracy claims are judged on the training form's F1 "
        "(as the paper scored it), with the deployed artefacts' F1 beside it. Every test's unit "
        "is the fold (seeds averaged within it). On ESC-10, a 10-class subset of the paper's "
        "ESC-50, verdicts are labelled 'on ESC-10' and absolute F1 values are indicative; on a "
        "dataset outside the paper's, comparisons are 'indicative only'. " + latency.HEAD_ONLY
    )


def disclosures(doc: Document) -> list[str]:
    """What a reader must know to weigh the verdicts: DISCLOSURES and the measured sibling leak."""
    leak = leakage.markdown(doc.leaks)
    return DISCLOSURES + ([leak] if leak else [])


def render(doc: Document) -> str:
    """reports/report.md: what was found first, then the results behind it, then the appendix
    (paper tables, tests, figures, methods, provenance)."""
    out = [*_opening(doc), *_results(doc), *_appendix(doc)]
    return "\n".join(out).rstrip() + "\n"


def _opening(doc: Document) -> list[str]:
    energy = (
        "CodeCarbon estimates"
        if deployment.energy_estimated(doc.runs)
        else "read from power counters"
    )
    return [
        "# Reproduction report: arXiv 2511.11743 (curiosity-driven quantised MoE)\n",
        "Generated by `stages/report.py` from the pipeline's outputs; no number here is typed "
        f"by hand. Energy and emission numbers are {energy} (see Deployment and Provenance).\n",
        "## Summary\n",
        summary_text(doc),
        "Every claim, its rule and its reason: [Claims verdict](#claims-verdict); what the "
        "deployed artefacts are and where they ran: [Deployment](#deployment).\n",
        "## What was run\n",
        what_was_run(doc.runs),
        variant_table(list(doc.runs["variant"].unique())),
        "## Claims verdict\n",
        rules_text(doc) + "\n",
        verdict_markdown(verdicts(doc)),
        "### Disclosures\n",
        "\n".join(f"- {d}" for d in disclosures(doc)) + "\n",
    ]


def _results(doc: Document) -> list[str]:
    estimated = deployment.energy_estimated(doc.runs)
    table = lambda name: doc.stats_tables.get(name, pd.DataFrame())  # noqa: E731
    return [
        "## Results, both protocols\n",
        side_by_side(
            doc.runs,
            doc.stats_config["f1_metric"],
            "energy mJ" + (" (estimate)" if estimated else ""),
        ),
        "### Selected epochs\n",
        routing.selected_epochs(doc.runs),
        "## Deployment\n",
        deployment.markdown(doc.runs, doc.devices, doc.deployed, PROTOCOLS),
        "### Whole path per clip\n",
        latency.whole_path(table(Table.PIPELINE_COST)),
        "### MoE overhead, decomposed\n",
        latency.moe_decomposition(table(Table.LATENCY_MOE_FORMS)),
        "### The machine while timing\n",
        latency.machine_state(table(Table.LATENCY_SCOPE)),
        "### MoE latency spread beside routing\n",
        latency.moe_spread(table(Table.LATENCY_SPREAD_ROUTING)),
    ]


def _appendix(doc: Document) -> list[str]:
    out = ["## Paper tables\n", f"Markdown and LaTeX copies: `{doc.tables_dir}/`.\n"]
    out += [f"### {t.title}\n\n{tables.markdown(t)}" for t in doc.paper_tables]
    out.append("## Statistical tests\n")
    out += stat_tests.test_sections(doc.stats_tables, doc.runs)
    if Table.ROUTING_ESCALATION in doc.stats_tables:
        out.append(routing_section(doc.stats_tables[Table.ROUTING_ESCALATION]))
    if Table.ROUTING_SAME_WEIGHTS in doc.stats_tables:
        out.append(routing.same_weights(doc.stats_tables[Table.ROUTING_SAME_WEIGHTS]))
    out.append("## Figures\n")
    out += [f"![{_stem(f.path)}]({f.path})\n\n*{f.caption}*\n" for f in doc.figures]
    out += ["## Not computed\n", not_computed(doc.stats_tables), "## Methods\n"]
    for name, lines in doc.protocols.items():
        out += [f"Protocol `{name}`:\n", *(f"- {line}" for line in lines), ""]
    out += ["Statistics:\n"]
    out += [f"- {k}: {m}" for k, m in doc.methods.items()]
    return out + ["", "## Provenance\n", doc.provenance]


DISCLOSURES = [
    "The hyper-parameters (reference-method.md 6.4) were tuned by the reference with Optuna on "
    "the same ESC-50 folds it then evaluated on (6.6); both protocols reuse them unchanged, so a "
    "residual selection effect favours the paper's setup on ESC-50.",
    "Under `faithful`, every MoE checkpoint is chosen on the test fold (the reference's "
    "validation set is its held-out fold, 6.3, 8.5), and its single models are scored at their "
    "last epoch; `corrected` chooses every checkpoint on an inner validation split.",
    "Our backbone is EfficientNet-Lite0 (1,280-d embeddings), not the paper's EfficientNet-B3 "
    "(1,536-d), whose weights cannot be fetched here; the parameter-count claim is counted at "
    "the paper's dimensions and ours is shown beside it.",
    "Our F1 is macro-F1 (`stats.f1_metric`); the paper's code computed weighted F1.",
    "Under `faithful`, test clips are scored in the reference's batches of 64: transductive for "
    "`ptq_int8` (its activation scale is computed over each batch); `corrected` scores each clip "
    "alone (batch 1), as deployed.",
]


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class ReportConfig:
    """params.yaml `report`."""

    formats: tuple[str, ...]
    dpi: int
    verdict: VerdictConfig

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in FIGURE_FORMATS]
        require(
            not bad and "png" in self.formats,
            "report.formats",
            f"{list(self.formats)}: must include png; valid: {list(FIGURE_FORMATS)}",
        )
        require(50 <= self.dpi <= 600, "report.dpi", f"{self.dpi} not in [50, 600]")
