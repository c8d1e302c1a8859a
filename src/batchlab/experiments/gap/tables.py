"""Keskar et al.'s tables from measured numbers, the paper's own beside them, and a verdict.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (ICLR 2017), "On Large-Batch Training for Deep
Learning: Generalization Gap and Sharp Minima":

* Table 2: training and test accuracy (%) of small-batch (SB, B = 256) and large-batch (LB,
  B = 10 % of the training set) Adam runs, trained until the loss stopped improving;
* Table 3: sharpness φ (Metric 2.1) in the full space at ε = 1e-3 and 5e-4;
* Table 4: sharpness in a random 100-dimensional subspace at ε = 1e-3.

The paper's numbers below are their published means (docs/science.md §4). Everything here is pure:
it turns per-seed measurements (:class:`NetworkNumbers`) into table rows and sentences, so it
can be checked on made-up numbers.

How a verdict is reached (per network):

* **Test gap** g = mean test accuracy SB − mean LB, in points. Its noise is the standard error
  of that difference: √(s²_SB/n_SB + s²_LB/n_LB) from the seeds' sample standard deviations when
  both regimes have ≥ 2 seeds, else the binomial √(p(1−p)/N_test) of each accuracy. |g| ≤ 2·SE
  is "no gap beyond the noise" (inconclusive); g > 2·SE agrees with the paper (LB tests lower),
  g < −2·SE disagrees. The size is compared with the paper's gap in points.
* **Training accuracy**: the paper's claim is a *generalization* gap, at about equal training
  accuracy. When one regime's training accuracy is lower by more than max(2·SE, 0.5 points), the
  text says so: LB fitting worse makes part of the test gap an optimization gap (the lecture's
  first point); SB fitting worse makes the comparison favour LB.
* **Sharpness**, for every (space, ε) measured: the ratio r = mean φ_LB / mean φ_SB. With ≥ 2
  seeds per regime, |mean φ_LB − mean φ_SB| ≤ 2·SE (the same standard error of a difference of
  means as above) is "within the noise" (inconclusive); otherwise r > 1 agrees (LB sharper) and
  r ≤ 1 disagrees. The size is r against the paper's ratio, and the text counts in how many seeds
  the LB minimum was sharper than the SB minimum of the same seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FULL = "full"
SUBSPACE = "random100"

# Table 2: (train SB, train LB, test SB, test LB), accuracy in %.
PAPER_ACCURACY: dict[str, tuple[float, float, float, float]] = {
    "F1": (99.66, 99.92, 98.03, 97.81),
    "F2": (99.99, 98.35, 64.02, 59.45),
    "C1": (99.89, 99.66, 80.04, 77.26),
    "C2": (99.99, 99.99, 89.24, 87.26),
    "C3": (99.56, 99.88, 49.58, 46.45),
    "C4": (99.10, 99.57, 63.08, 57.81),
}
# Tables 3 and 4: (network, space, ε) -> (φ SB, φ LB).
PAPER_SHARPNESS: dict[tuple[str, str, float], tuple[float, float]] = {
    ("F1", FULL, 1e-3): (1.23, 205.14),
    ("F2", FULL, 1e-3): (1.39, 310.64),
    ("C1", FULL, 1e-3): (28.58, 707.23),
    ("C2", FULL, 1e-3): (8.68, 925.32),
    ("C3", FULL, 1e-3): (29.85, 258.75),
    ("C4", FULL, 1e-3): (12.83, 421.84),
    ("F1", FULL, 5e-4): (0.61, 42.90),
    ("C1", FULL, 5e-4): (7.08, 227.31),
    ("F1", SUBSPACE, 1e-3): (0.11, 9.22),
    ("C1", SUBSPACE, 1e-3): (2.18, 137.25),
}

AGREES = "agrees"
DISAGREES = "disagrees"
INCONCLUSIVE = "inconclusive"
# |difference| ≤ NOISE_FACTOR · standard error counts as no difference.
NOISE_FACTOR = 2.0


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation of n values (std None for n < 2)."""

    mean: float
    std: float | None
    n: int

    def show(self, digits: int = 2) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarize(values: Sequence[float]) -> Stat:
    values = [float(v) for v in values]
    if not values:
        return Stat(math.nan, None, 0)
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Stat(statistics.fmean(values), std, len(values))


@dataclass(frozen=True)
class RegimeNumbers:
    """One regime (SB or LB) of one network: per-seed accuracies (fractions 0 … 1) in seed order,
    and per-seed sharpness φ under the keys (space, ε)."""

    batch_size: int
    train_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    sharpness: Mapping[tuple[str, float], tuple[float, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "train_acc": list(self.train_acc),
            "test_acc": list(self.test_acc),
            "sharpness": [
                {"space": space, "epsilon": eps, "values": list(values)}
                for (space, eps), values in sorted(self.sharpness.items())
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RegimeNumbers":
        return cls(
            int(data["batch_size"]),
            tuple(data["train_acc"]),
            tuple(data["test_acc"]),
            {(row["space"], float(row["epsilon"])): tuple(row["values"]) for row in data["sharpness"]},
        )


@dataclass(frozen=True)
class NetworkNumbers:
    """Both regimes of one network, with what it was (``paper`` is Keskar's name, e.g. "F1")."""

    paper: str
    model: str
    dataset: str
    test_examples: int
    sb: RegimeNumbers
    lb: RegimeNumbers

    @property
    def label(self) -> str:
        return f"{self.paper} ({self.model} on {self.dataset})"

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k not in ("sb", "lb")},
                "sb": self.sb.to_dict(), "lb": self.lb.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkNumbers":
        return cls(data["paper"], data["model"], data["dataset"], int(data["test_examples"]),
                   RegimeNumbers.from_dict(data["sb"]), RegimeNumbers.from_dict(data["lb"]))


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "caption": self.caption}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        return cls(data["title"], tuple(data["columns"]), tuple(tuple(r) for r in data["rows"]), data.get("caption", ""))

    def render(self) -> str:
        """Plain-text table with aligned columns."""
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        lines = [self.title,
                 "  ".join(c.ljust(w) for c, w in zip(self.columns, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in self.rows]
        if self.caption:
            lines.append(self.caption)
        return "\n".join(lines)


@dataclass(frozen=True)
class Finding:
    """One comparison with the paper: its verdict (agrees / disagrees / inconclusive) and a sentence."""

    network: str
    aspect: str
    verdict: str
    text: str
    ours: float | None = None
    paper: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- tables


def _percent(values: Sequence[float]) -> Stat:
    return summarize([100.0 * v for v in values])


def accuracy_table(networks: Sequence[NetworkNumbers]) -> Table:
    """Keskar's Table 2 layout, ours (mean ± std over seeds, %) with the paper's value beside each."""
    rows = []
    for net in networks:
        paper = PAPER_ACCURACY.get(net.paper)
        ours = [_percent(net.sb.train_acc), _percent(net.lb.train_acc), _percent(net.sb.test_acc),
                _percent(net.lb.test_acc)]
        cells = [net.paper, f"{net.model} / {net.dataset}", f"{net.sb.batch_size} / {net.lb.batch_size}",
                 str(min(len(net.sb.test_acc), len(net.lb.test_acc)))]
        for i, stat in enumerate(ours):
            cells += [stat.show(), "—" if paper is None else f"{paper[i]:.2f}"]
        rows.append(tuple(cells))
    columns = ("network", "model / data", "B SB / LB", "seeds",
               "train SB", "paper", "train LB", "paper", "test SB", "paper", "test LB", "paper")
    return Table(
        "Table 2 — accuracy (%), mean ± std over seeds; Keskar et al.'s value to the right of each",
        columns, tuple(rows),
        "Paper: F1 = fully connected on MNIST, C1 = shallow conv net on CIFAR-10; SB = 256, LB = 10 % of the "
        "training set, Adam, trained until the loss stopped improving, 5 seeds.",
    )


def sharpness_keys(networks: Sequence[NetworkNumbers]) -> list[tuple[str, float]]:
    """Every (space, ε) measured for any network: full space first, larger ε first."""
    keys = {key for net in networks for key in (*net.sb.sharpness, *net.lb.sharpness)}
    return sorted(keys, key=lambda k: (k[0] != FULL, k[0], -k[1]))


def sharpness_table(networks: Sequence[NetworkNumbers]) -> Table:
    """Keskar's Tables 3 and 4 layout: φ of SB and LB minima (mean ± std), the paper's beside them."""
    rows = []
    for net in networks:
        for space, eps in sharpness_keys([net]):
            sb = summarize(net.sb.sharpness.get((space, eps), ()))
            lb = summarize(net.lb.sharpness.get((space, eps), ()))
            paper = PAPER_SHARPNESS.get((net.paper, space, eps))
            ratio = lb.mean / sb.mean if sb.n and lb.n and sb.mean > 0 else math.nan
            rows.append((
                net.paper, "full space" if space == FULL else f"random subspace ({space.removeprefix('random')})",
                f"{eps:g}",
                sb.show(), "—" if paper is None else f"{paper[0]:.2f}",
                lb.show(), "—" if paper is None else f"{paper[1]:.2f}",
                _ratio(ratio), "—" if paper is None else _ratio(paper[1] / paper[0]),
            ))
    columns = ("network", "space", "ε", "φ SB", "paper", "φ LB", "paper", "LB/SB", "paper")
    return Table(
        "Tables 3 & 4 — sharpness φ (Keskar Metric 2.1, 10 L-BFGS-B iterations), mean ± std over seeds",
        columns, tuple(rows),
        "φ = 100·(max over the box C_ε of f(x + Ay) − f(x)) / (1 + f(x)), f the training cross-entropy.",
    )


def _ratio(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"×{value:.3g}"


# -------------------------------------------------------------------------------- verdicts


def difference_noise(a: Sequence[float], b: Sequence[float], test_examples: int) -> float:
    """Standard error of mean(a) − mean(b) in points (module docstring's rule); inputs are fractions."""
    if len(a) >= 2 and len(b) >= 2:
        return 100.0 * math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    pa, pb = statistics.fmean(a), statistics.fmean(b)
    n = max(test_examples, 1)
    return 100.0 * math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)


def gap_finding(net: NetworkNumbers) -> Finding:
    """Is the LB minimum's test accuracy lower, and by how much against the paper's gap?"""
    if not net.sb.test_acc or not net.lb.test_acc:
        return Finding(net.paper, "test gap", INCONCLUSIVE, "no finished run in one of the regimes, so no test gap")
    gap = 100.0 * (statistics.fmean(net.sb.test_acc) - statistics.fmean(net.lb.test_acc))
    noise = NOISE_FACTOR * difference_noise(net.sb.test_acc, net.lb.test_acc, net.test_examples)
    paper = PAPER_ACCURACY.get(net.paper)
    paper_gap = None if paper is None else paper[2] - paper[3]
    paper_text = "" if paper_gap is None else f"; the paper's gap is {paper_gap:.2f} points"
    sb, lb = _percent(net.sb.test_acc), _percent(net.lb.test_acc)
    head = f"test accuracy SB {sb.show()} % vs LB {lb.show()} %"
    if gap > noise:
        verdict = AGREES
        size = "" if paper_gap is None else f" (paper: {paper_gap:.2f} points; ours is {_size(gap, paper_gap)})"
        text = f"{head}: LB tests lower by {gap:.2f} points (noise ±{noise:.2f}), as in the paper{size}"
    elif gap < -noise:
        verdict = DISAGREES
        text = f"{head}: LB tests higher by {-gap:.2f} points (noise ±{noise:.2f}), unlike the paper{paper_text}"
    else:
        verdict = INCONCLUSIVE
        text = f"{head}: a gap of {gap:+.2f} points, within the noise (±{noise:.2f}), so no gap is shown{paper_text}"
        if paper_gap is not None and abs(paper_gap) <= noise:
            text += ", itself smaller than this experiment can resolve"
    return Finding(net.paper, "test gap", verdict, text, gap, paper_gap)


def training_fit_finding(net: NetworkNumbers) -> Finding:
    """Did both regimes fit the training set about equally well (the paper's premise)?

    A difference beyond max(2·SE, 0.5 points) is reported, whichever regime fit worse: half a
    point is the largest SB–LB training-accuracy difference the paper reports for F1 and C1."""
    if not net.sb.train_acc or not net.lb.train_acc:
        return Finding(net.paper, "training fit", INCONCLUSIVE, "no finished run in one of the regimes")
    gap = 100.0 * (statistics.fmean(net.sb.train_acc) - statistics.fmean(net.lb.train_acc))
    several_seeds = len(net.sb.train_acc) >= 2 and len(net.lb.train_acc) >= 2
    noise = NOISE_FACTOR * difference_noise(net.sb.train_acc, net.lb.train_acc, 0) if several_seeds else 0.0
    margin = max(noise, 0.5)
    paper = PAPER_ACCURACY.get(net.paper)
    paper_gap = None if paper is None else paper[0] - paper[1]
    sb, lb = _percent(net.sb.train_acc), _percent(net.lb.train_acc)
    head = f"training accuracy SB {sb.show()} % vs LB {lb.show()} %"
    if gap > margin:
        verdict = DISAGREES
        text = (f"{head}: LB fit the training set {gap:.2f} points worse, so part of any test gap is an "
                "optimization gap (the lecture's first point), not the paper's gap at equal training accuracy")
    elif gap < -margin:
        verdict = DISAGREES
        text = (f"{head}: SB fit the training set {-gap:.2f} points worse, so the comparison is not at equal "
                "training accuracy and favours LB")
    else:
        verdict = AGREES
        text = f"{head}: both fit the training set about equally, as in the paper"
    return Finding(net.paper, "training fit", verdict, text, gap, paper_gap)


def sharpness_findings(net: NetworkNumbers) -> list[Finding]:
    """LB sharper than SB? One finding per (space, ε) measured, size against the paper's ratio."""
    findings = []
    for space, eps in sharpness_keys([net]):
        sb_values = net.sb.sharpness.get((space, eps), ())
        lb_values = net.lb.sharpness.get((space, eps), ())
        if not sb_values or not lb_values:
            continue
        sb, lb = statistics.fmean(sb_values), statistics.fmean(lb_values)
        ratio = lb / sb if sb > 0 else math.inf if lb > 0 else math.nan
        pairs = list(zip(sb_values, lb_values))
        sharper = sum(l > s for s, l in pairs)
        paper = PAPER_SHARPNESS.get((net.paper, space, eps))
        paper_ratio = None if paper is None else paper[1] / paper[0]
        where = "full space" if space == FULL else f"random {space.removeprefix('random')}-dim subspace"
        head = f"sharpness ({where}, ε = {eps:g}) SB {sb:.3g} vs LB {lb:.3g}"
        seeds = f"LB sharper in {sharper} of {len(pairs)} seed{'s' if len(pairs) != 1 else ''}"
        size = "" if paper_ratio is None else f" (paper ×{paper_ratio:.3g}; ours is {_size(ratio, paper_ratio)})"
        noise = (NOISE_FACTOR * math.sqrt(statistics.variance(sb_values) / len(sb_values)
                                          + statistics.variance(lb_values) / len(lb_values))
                 if len(sb_values) >= 2 and len(lb_values) >= 2 else 0.0)
        if noise and abs(lb - sb) <= noise:
            verdict = INCONCLUSIVE
            text = (f"{head}: a difference of {lb - sb:+.3g} (×{ratio:.3g}), within the noise (±{noise:.3g}), "
                    f"{seeds}, so neither minimum is shown to be sharper{size}")
        elif lb > sb:
            verdict = AGREES
            text = f"{head}: LB minima are sharper by ×{ratio:.3g}{size}, {seeds}, as in the paper"
        else:
            verdict = DISAGREES
            text = f"{head}: LB minima are not sharper (×{ratio:.3g}{size}), {seeds}, unlike the paper"
        findings.append(Finding(net.paper, f"sharpness {space} {eps:g}", verdict, text, ratio, paper_ratio))
    return findings


def network_findings(net: NetworkNumbers) -> list[Finding]:
    return [gap_finding(net), training_fit_finding(net), *sharpness_findings(net)]


def _size(ours: float, paper: float) -> str:
    """How a measured size compares with the paper's: "about the paper's size" within a factor
    1.25 either way, else "N× the paper's"."""
    if not (math.isfinite(ours) and math.isfinite(paper)) or paper == 0:
        return "not comparable with the paper's"
    factor = ours / paper
    if 0.8 <= factor <= 1.25:
        return "about the paper's size"
    return f"{factor:.2g}× the paper's"


def _count(n: int, singular_verb: str, plural_verb: str) -> str:
    return f"{n} {singular_verb if n == 1 else plural_verb}"


def findings_paragraph(networks: Sequence[NetworkNumbers], findings: Sequence[Finding]) -> str:
    """The automatic verdict: one paragraph per network saying what agreed or disagreed with the
    paper, then a tally; paragraphs are separated by a blank line."""
    sentences = []
    for net in networks:
        own = [f for f in findings if f.network == net.paper]
        seeds = min(len(net.sb.test_acc), len(net.lb.test_acc))
        parts = "; ".join(f.text for f in own)
        sentences.append(
            f"{net.label}, SB = {net.sb.batch_size} vs LB = {net.lb.batch_size}, {seeds} seed{'s' if seeds != 1 else ''}: "
            f"{parts}."
        )
    checks = [f for f in findings if f.aspect != "training fit"]
    tally = {v: sum(f.verdict == v for f in checks) for v in (AGREES, DISAGREES, INCONCLUSIVE)}
    sentences.append(
        f"In all, {tally[AGREES]} of {len(checks)} comparisons with the paper agree in direction, "
        f"{_count(tally[DISAGREES], 'disagrees', 'disagree')} and "
        f"{_count(tally[INCONCLUSIVE], 'is', 'are')} within the noise."
    )
    return "\n\n".join(sentences)
