"""The age-estimation methods of the field as age heads (`tasks.age.head=…`), one class per head.

Each head says how many outputs the network gives it (and, for CORAL, which output layer), its loss on
a batch — `loss(logits, target)`, target the (N, 2) [bin index, years] array of `agebench.tasks.base` — and
how its outputs decode to years — `decode(logits)`. The distribution and ordinal heads work over the
bins of `tasks.age.bins`; by default one bin per year over `tasks.age.range` (`years`), so the decoded
age is in years and MAE is measured against the exact age. The (years) distance between bins is the
distance of their centres, so a coarser scheme still gives each loss its ordinal geometry.

`classification` and `regression` are `agebench.tasks.base.AgeClassification` / `AgeRegression` (kept
there, unchanged); the heads below are the other methods compared by Paplham & Franc, "A Call to
Reflect on Evaluation Practices for Age Estimation" (CVPR 2024), plus CORN.

| head          | outputs | loss                                        | decoding                         |
|---------------|---------|---------------------------------------------|----------------------------------|
| dldl          | K       | KL(Gaussian(y, σ) ‖ softmax)                | expectation over bin centres     |
| dldl_v2       | K       | KL + λ·|E[age] − y|                         | expectation over bin centres     |
| sord          | K       | KL(softmax(−φ(c_k, y)) ‖ softmax)           | expectation over bin centres     |
| mean_variance | K       | CE + λ1·½(m − y)² + λ2·Var                  | expectation over bin centres     |
| unimodal      | K       | concentrated NLL + λ·unimodality penalty    | expectation over bin centres     |
| orcnn         | K − 1   | Σ_k BCE(σ(z_k), [rank > k]) (own weights)   | bin of #(P(rank > k) > ½)        |
| coral         | K − 1   | coral_pytorch.losses.coral_loss (shared w)  | bin of #(P(rank > k) > ½)        |
| corn          | K − 1   | coral_pytorch corn_loss, summed per face    | bin of #(Π_j≤k P(rank > j|…) > ½)|

`tasks.age.decode=expectation|argmax|median` overrides the decoding of the softmax heads.

Why one file of ~430 lines: it is one family (as timm keeps one architecture family per file) — eight
small head classes sharing the bin geometry, target layout and decoding helpers at the top; split per
head, each file would re-import the same helpers for 30–50 lines of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from agebench.data.binning import AgeBins
from agebench.errors import UserError
from agebench.tasks.base import AgeRegression, Task, age_error_metrics, labelled_ages, zero_loss

BASE_HEADS = {  # the two heads agebench.tasks.base implements, as the run record states them
    "classification": "expectation over bin centres (top-1 from the argmax bin)",
    "regression": "the regressed output in years",
}


class AgeHead:
    """A head over `bins`: subclasses define `_loss(logits, cls, years)` on labelled rows and `decode`."""

    name = ""
    softmax = True          # outputs are K logits of a softmax (10-crop averaging averages probabilities)
    decoding = "expectation over bin centres"

    def __init__(self, bins: AgeBins, decode: str | None = None, **_):
        self.bins = bins
        self.centres = torch.as_tensor(bins.centres, dtype=torch.float32)
        if decode is not None:
            if not self.softmax:
                raise UserError(f"tasks.age.decode={decode} applies to softmax heads; {self.name} decodes its "
                                f"ordinal outputs by counting; drop tasks.age.decode")
            if decode not in ("expectation", "argmax", "median"):
                raise UserError(f"tasks.age.decode={decode!r}; use expectation, argmax or median")
            self.decoding = {"expectation": "expectation over bin centres", "argmax": "centre of the argmax bin",
                             "median": "centre of the median bin"}[decode]
        self.decode_kind = decode or "expectation"

    @property
    def num_classes(self) -> int:
        return self.bins.num_bins

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def output_layer(self, in_features: int) -> nn.Module:
        return nn.Linear(in_features, self.num_outputs)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rows = labelled_ages(logits, target, self.centres)  # exact age, else the bin centre
        if rows is None:
            return zero_loss(logits)
        return self._loss(*rows)

    def _loss(self, logits, cls, years):  # pragma: no cover
        raise NotImplementedError

    # -- decoding -----------------------------------------------------------------------------------------
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(dim=1)

    def predict_class(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted bin (top-1 and one-off are measured on it)."""
        p = self.probabilities(logits)
        if self.decode_kind == "median":
            return (p.cumsum(dim=1) < 0.5).sum(dim=1).clamp_max(p.shape[1] - 1)
        return p.argmax(dim=1)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Years per row."""
        centres = self.centres.to(logits.device)
        if self.decode_kind == "expectation":
            return self.probabilities(logits) @ centres
        return centres[self.predict_class(logits)]


def _expectation(p: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return p @ centres


def _mean_and_variance(logits: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean m = Σ_k p_k c_k and variance Σ_k p_k (c_k − m)² of the softmax over bin centres, per row."""
    p = logits.softmax(dim=1)
    mean = _expectation(p, centres)
    return mean, (p * (centres[None, :] - mean[:, None]) ** 2).sum(dim=1)


def _kl(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(target ‖ softmax(logits)) = Σ_k t_k (log t_k − log q_k)."""
    return (torch.xlogy(target, target) - target * logits.log_softmax(dim=1)).sum(dim=1).mean()


def gaussian_labels(years: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """DLDL's label distribution: p_k ∝ exp(−(c_k − y)² / 2σ²), normalised over the bins."""
    return torch.softmax(-((centres[None, :] - years[:, None]) ** 2) / (2.0 * sigma**2), dim=1)


class DLDL(AgeHead):
    """Deep label distribution learning: Gao, Xing, Xie, Wu & Geng, "Deep Label Distribution Learning With
    Label Ambiguity", IEEE TIP 26(6), 2017. The target is a discretised Gaussian around the true age
    (std `tasks.age.sigma` years); the loss is KL(target ‖ softmax)."""

    name = "dldl"

    def __init__(self, bins, sigma: float = 2.0, **kw):
        super().__init__(bins, **kw)
        if not float(sigma) > 0:
            raise UserError(f"tasks.age.sigma={sigma} must be > 0 (years), e.g. 2")
        self.sigma = float(sigma)

    def _loss(self, logits, cls, years):
        return _kl(gaussian_labels(years, self.centres.to(logits.device), self.sigma), logits)


class DLDLv2(DLDL):
    """DLDL-v2: Gao, Zhou, Wu & Geng, "Age Estimation Using Expectation of Label Distribution Learning",
    IJCAI 2018. The DLDL loss plus `tasks.age.lambda_l1` × |E[age] − y| (the expectation's L1 error)."""

    name = "dldl_v2"

    def __init__(self, bins, sigma: float = 2.0, lambda_l1: float = 1.0, **kw):
        super().__init__(bins, sigma=sigma, **kw)
        self.lambda_l1 = float(lambda_l1)

    def _loss(self, logits, cls, years):
        centres = self.centres.to(logits.device)
        expected = _expectation(logits.softmax(dim=1), centres)
        return super()._loss(logits, cls, years) + self.lambda_l1 * (expected - years).abs().mean()


class SORD(AgeHead):
    """Soft ordinal labels: Díaz & Marathe, "Soft Labels for Ordinal Regression", CVPR 2019. The target is
    softmax_k(−φ(c_k, y)) with φ the absolute (default) or squared distance in years
    (`tasks.age.sord_distance`); the loss is KL(target ‖ softmax)."""

    name = "sord"

    def __init__(self, bins, sord_distance: str = "absolute", **kw):
        super().__init__(bins, **kw)
        if sord_distance not in ("absolute", "squared"):
            raise UserError(f"tasks.age.sord_distance={sord_distance!r}; use absolute or squared")
        self.distance = sord_distance

    def soft_labels(self, years: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        d = (centres[None, :] - years[:, None]).abs()
        return torch.softmax(-(d**2 if self.distance == "squared" else d), dim=1)

    def _loss(self, logits, cls, years):
        return _kl(self.soft_labels(years, self.centres.to(logits.device)), logits)


class MeanVariance(AgeHead):
    """Mean-variance loss: Pan, Han, Shan & Chen, "Mean-Variance Loss for Deep Age Estimation from a Face",
    CVPR 2018. L = CE + λ1·½·(m − y)² + λ2·Σ_k p_k (c_k − m)², m = Σ_k p_k c_k (batch means), with the
    paper's λ1 = 0.2, λ2 = 0.05 (`tasks.age.mv_lambda_mean`, `tasks.age.mv_lambda_var`)."""

    name = "mean_variance"

    def __init__(self, bins, mv_lambda_mean: float = 0.2, mv_lambda_var: float = 0.05, **kw):
        super().__init__(bins, **kw)
        self.lambda_mean, self.lambda_var = float(mv_lambda_mean), float(mv_lambda_var)

    def _loss(self, logits, cls, years):
        mean, variance = _mean_and_variance(logits, self.centres.to(logits.device))
        return (F.cross_entropy(logits, cls) + self.lambda_mean * 0.5 * ((mean - years) ** 2).mean()
                + self.lambda_var * variance.mean())


class Unimodal(AgeHead):
    """Unimodal-concentrated loss: Li, Wang, Huang & Tao, "Unimodal-Concentrated Loss: Fully Adaptive Label
    Distribution Learning for Ordinal Regression", CVPR 2022 (the `unimodal` row of Paplham & Franc, who
    report it with their own re-implementation). Concentrated term: the Gaussian NLL of the true age
    under the predicted mean m and variance v, ½·log v + (y − m)² / 2v; unimodal term: Σ_k relu(s_k ·
    (p_{k+1} − p_k)), s_k = −1 left of the true bin (p must not fall) and +1 from it on (p must not rise),
    weighted by `tasks.age.unimodal_lambda`.

    λ: the paper does not fix one for age. Paplham & Franc's table used the authors' official code, which is
    not public; their released re-implementation (`unimodal_concentrated_loss_not_official` in
    lib/loss.py of github.com/paplhjak/Facial-Age-Estimation-Benchmark, with the same two terms and signs
    as here) defaults to λ = 1000. Our default is 1, a deliberate departure: at 1000 the unimodality
    term (≤ 2 per face) outweighs the concentrated NLL by about three orders of magnitude, and on small
    training sets (the synthetic default, the test budget) the network settles on one unimodal
    distribution for every face — the constant predictor's MAE. Set `tasks.age.unimodal_lambda=1000` to
    run their setting (e.g. on UTKFace)."""

    name = "unimodal"
    eps = 1e-10

    def __init__(self, bins, unimodal_lambda: float = 1.0, **kw):
        super().__init__(bins, **kw)
        self.lambda_unimodal = float(unimodal_lambda)

    def _loss(self, logits, cls, years):
        mean, variance = _mean_and_variance(logits, self.centres.to(logits.device))
        concentrated = (0.5 * torch.log(variance + self.eps) + (years - mean) ** 2 / (2 * variance + self.eps)).mean()
        k = torch.arange(logits.shape[1] - 1, device=logits.device)
        sign = torch.where(k[None, :] < cls[:, None], -1.0, 1.0)
        unimodal = F.relu(sign * logits.softmax(dim=1).diff(dim=1)).sum(dim=1).mean()
        return concentrated + self.lambda_unimodal * unimodal


class _Ordinal(AgeHead):
    """K − 1 binary outputs P(rank > k); the rank is the bin index.

    ORCNN's and CORAL's output biases start at the uniform prior over the K bins (`prior_bias`): the
    point a softmax head starts from (uniform over its bins) and a regression head too (the range's
    middle), so an untrained head predicts the middle bin (CORN: see CORN.output_layer). With all
    biases at 0 every P(rank > k) starts at ½, and the K − 1 thresholds must first spread to
    ±log(K − 1) (±4.4 for one-year bins over 0–80), which Adam does at about lr per step: at lr 3e-3
    that alone takes ~1,500 steps, and CORAL's one shared weight cannot stand in for it (measured on the
    test budget: CORAL MAE 15.7 with zero biases, 10.1 with the prior; docs/age_heads.md)."""

    softmax = False
    decoding = "centre of bin #(P(rank > k) > 0.5)"

    @property
    def num_outputs(self) -> int:
        return self.num_classes - 1

    def prior_bias(self) -> torch.Tensor:
        """logit P(rank > k) when the rank is uniform over the K bins: log((K − 1 − k) / (k + 1))."""
        k = torch.arange(self.num_classes - 1, dtype=torch.float32)
        return torch.log((self.num_classes - 1 - k) / (k + 1))

    def _layer(self, in_features: int) -> tuple[nn.Module, torch.Tensor]:
        layer = nn.Linear(in_features, self.num_outputs)
        return layer, layer.bias

    def output_layer(self, in_features: int) -> nn.Module:
        layer, bias = self._layer(in_features)
        with torch.no_grad():
            bias.copy_(self.prior_bias())
        return layer

    def rank_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the rank probabilities P(y > k): P(y = k) = P(y > k−1) − P(y > k), clipped
        at 0 (the binary tasks need not be consistent) and renormalised."""
        above = self.rank_probabilities(logits)
        ones = torch.ones_like(above[:, :1])
        zeros = torch.zeros_like(above[:, :1])
        p = (torch.cat([ones, above], dim=1) - torch.cat([above, zeros], dim=1)).clamp_min(0.0)
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def predict_class(self, logits):
        return (self.rank_probabilities(logits) > 0.5).sum(dim=1)

    def decode(self, logits):
        return self.centres.to(logits.device)[self.predict_class(logits)]


def extended_levels(cls: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Extended binary labels [rank > k] for k = 0..K−2 (coral_pytorch's levels_from_labelbatch, batched)."""
    return (cls[:, None] > torch.arange(num_classes - 1, device=cls.device)[None, :]).float()


class ORCNN(_Ordinal):
    """Ordinal regression with multiple output CNN: Niu, Zhou, Wang, Gao & Hua, "Ordinal Regression with
    Multiple Output CNN for Age Estimation", CVPR 2016. K − 1 binary classifiers, each with its own
    weights, trained with the sum of their cross-entropies (uniform importance weights)."""

    name = "orcnn"

    def _loss(self, logits, cls, years):
        levels = extended_levels(cls, self.num_classes)
        return F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(dim=1).mean()


class CORAL(_Ordinal):
    """CORAL: Cao, Mirjalili & Raschka, "Rank Consistent Ordinal Regression for Neural Networks with
    Application to Age Estimation", Pattern Recognition Letters 140, 2020. One weight vector shared by the
    K − 1 binary tasks with their own biases (coral_pytorch's CoralLayer), so the rank probabilities
    never cross; the loss is coral_pytorch's coral_loss."""

    name = "coral"

    def _layer(self, in_features):
        from coral_pytorch.layers import CoralLayer

        layer = CoralLayer(in_features, self.num_classes)
        return layer, layer.coral_bias

    def _loss(self, logits, cls, years):
        from coral_pytorch.losses import coral_loss

        return coral_loss(logits, extended_levels(cls, self.num_classes))


class CORN(_Ordinal):
    """CORN: Shi, Cao & Raschka, "Deep Neural Networks for Rank-Consistent Ordinal Regression Based on
    Conditional Probabilities", Pattern Analysis and Applications 26, 2023. Output k models
    P(rank > k | rank > k − 1) on the rows that reach it (coral_pytorch's corn_loss); decoding multiplies
    the conditionals (coral_pytorch's corn_label_from_logits).

    Reduction (`tasks.age.corn_reduction`). coral_pytorch's corn_loss (the paper's eq.) divides the summed
    binary cross-entropies by the number of (row, task) pairs: a face of rank r takes part in min(r+1, K−1)
    tasks, so with one-year bins over 0–80 that is ≈ 40 pairs per face, and the loss is ≈ 1/40 of what
    coral_loss and ORCNN give on the same outputs (they sum a face's K − 1 terms and average over faces).
    Alone, Adam hides that scale; next to gender and race on a shared trunk at equal task weights it does
    not: CORN's age gradient is drowned out and the trunk learns no age (measured: test MAE 20.2, worse
    than the train-median predictor's 19.6, vs 14.6 with the row-sum reduction; see docs/age_heads.md).
    Default `row_sum`: the same binary terms, summed per face and averaged over faces — corn_loss ×
    (pairs / faces), the reduction coral_loss uses — so the ordinal heads weigh alike in a multi-task loss.
    `pair_mean` is coral_pytorch's value unchanged. Within a batch both give the same gradient direction."""

    name = "corn"
    decoding = "centre of bin #(Π_{j≤k} P(rank > j | rank > j−1) > 0.5)"
    REDUCTIONS = ("row_sum", "pair_mean")

    def __init__(self, bins, corn_reduction: str = "row_sum", **kw):
        super().__init__(bins, **kw)
        if corn_reduction not in self.REDUCTIONS:
            raise UserError(f"tasks.age.corn_reduction={corn_reduction!r}; use row_sum or pair_mean")
        self.reduction = corn_reduction

    def output_layer(self, in_features):
        # PyTorch's default Linear init, not the prior: started at the uniform prior's conditionals
        # (log(K − 1 − k)), CORN's validation loss was lowest before any training on the test budget (it
        # then only rises as the hazards sharpen, while MAE falls 19.8 → 10.4), so the best-val checkpoint
        # was the untrained one. From the default init it learns and is selected normally.
        return nn.Linear(in_features, self.num_outputs)

    def rank_probabilities(self, logits):
        return torch.cumprod(torch.sigmoid(logits.float()), dim=1)

    def predict_class(self, logits):
        from coral_pytorch.dataset import corn_label_from_logits

        return corn_label_from_logits(logits.float())

    def _loss(self, logits, cls, years):
        from coral_pytorch.losses import corn_loss

        loss = corn_loss(logits, cls, self.num_classes)
        if self.reduction == "pair_mean":
            return loss
        pairs = (cls + 1).clamp_max(self.num_classes - 1).sum()  # Σ_faces #tasks the face reaches
        return loss * pairs / len(cls)


HEADS: dict[str, type[AgeHead]] = {h.name: h for h in (DLDL, DLDLv2, SORD, MeanVariance, Unimodal, ORCNN, CORAL, CORN)}
ALL_HEADS = tuple(BASE_HEADS) + tuple(HEADS)
OPTION_KEYS = ("sigma", "lambda_l1", "sord_distance", "mv_lambda_mean", "mv_lambda_var", "unimodal_lambda",
               "corn_reduction", "decode")


@dataclass
class AgeHeadTask(Task):
    """The age task of a head in HEADS: the head's loss, its decoding, metrics over exact ages."""

    bins: AgeBins = None  # type: ignore[assignment]
    head: AgeHead = None  # type: ignore[assignment]
    cs_thresholds: tuple = (5,)
    needs_exact_ages = True

    @property
    def loss_kind(self) -> str:  # the module's 10-crop averaging averages softmax probabilities for "ce"
        return "ce" if self.head.softmax else self.head.name

    @property
    def output_kind(self) -> str:
        return "softmax" if self.head.softmax else "sigmoid"

    def head_spec(self):
        spec = super().head_spec()
        return dataclasses.replace(spec, layer=self.head.output_layer)

    def loss(self, output, target):
        return self.head.loss(output, target)

    def years(self, output):
        return self.head.decode(output)

    def predict(self, output):
        return self.head.decode(output)

    def class_probabilities(self, output):
        return self.head.probabilities(output)

    def metrics(self, output, target):
        rows = labelled_ages(output, target, self.head.centres)
        if rows is None:
            return {}
        output, cls, truth = rows
        pred_cls = self.head.predict_class(output)
        out = {"top1": (pred_cls == cls).float().mean().item(),
               "one_off": ((pred_cls - cls).abs() <= 1).float().mean().item()}
        out.update(age_error_metrics(self.head.decode(output), truth, self.cs_thresholds))
        return out


def build_age_head_task(head: str, bins: AgeBins, opts, cs_thresholds) -> AgeHeadTask:
    options = {k: opts.get(k) for k in OPTION_KEYS if opts.get(k) is not None}
    if bins.num_bins < 2:
        raise UserError(f"tasks.age.head={head} needs at least 2 age bins; set tasks.age.bins=years")
    made = HEADS[head](bins, **options)
    return AgeHeadTask("age", made.num_outputs, bins=bins, head=made, cs_thresholds=tuple(cs_thresholds))


def describe(tasks) -> dict | None:
    """The run record's `age_head`: which head, its decoding to years, its bins and their count."""
    for t in tasks:
        if t.name != "age":
            continue
        if isinstance(t, AgeHeadTask):
            name, decoding = t.head.name, t.head.decoding
        else:
            name = "regression" if isinstance(t, AgeRegression) else "classification"
            decoding = BASE_HEADS[name]
        bins = getattr(t, "bins", None)
        return {"head": name, "decoding": decoding, "bins": bins.name if bins is not None else None,
                "num_bins": bins.num_bins if bins is not None else None, "outputs": int(t.num_outputs)}
    return None
