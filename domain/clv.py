"""BG/NBD plus Gamma-Gamma on the whole customer base, through pymc-marketing. No I/O.

The models are pymc-marketing's `BetaGeoModel` (Fader, Hardie & Lee 2005) and
`GammaGammaModel` (Fader & Hardie 2013), both fitted by maximum a posteriori (`method="map"`)
with the library's default priors. Nothing here re-implements them: this module only shapes the
data, calls the fit once per refresh, reads the predictions and decides whether to trust them.

Data, one row per customer with at least one order (time in weeks, money in fen):
- BG/NBD sees every such customer: `frequency` = repeat purchases (orders - 1), `recency` =
  weeks from the first to the last order, `T` = weeks from the first order to `as_of`. One-time
  buyers (frequency 0) are part of the fit because they carry the information about dropout.
- Gamma-Gamma sees the repeat customers (frequency > 0) with a positive `monetary_value`, the
  customer's average net order value (see domain.valuation.rfm_inputs).

Predictions (expected purchases over the horizon, Gamma-Gamma's expected spend per order, and
their product, the expected revenue) are only used for customers with at least 2 orders; the
rest are valued by the run-rate fallback in domain.valuation.

A fit is degenerate, and then every customer falls back, when:
- there are fewer than MIN_REPEAT_CUSTOMERS repeat customers (too little data to fit);
- the optimiser raises, or a fitted parameter is not finite and positive;
- Gamma-Gamma's q <= 1 (the population mean spend v*p/(q-1) does not exist).
A single customer's prediction that is not finite (e.g. a hypergeometric overflow for a very
long history) or negative falls back for that customer only, with the reason recorded.

pymc and pytensor are imported inside `fit_clv`, so importing this module (and the worker that
registers the valuation activity) stays cheap; the pytensor compilation is paid once per fit.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_REPEAT_CUSTOMERS = 20
METHOD = "BG_NBD_GG"
BG_PARAMS = ("r", "alpha", "a", "b")
GG_PARAMS = ("p", "q", "v")


@dataclass(frozen=True)
class RfmRow:
    """One customer's summary for the models (weeks; fen)."""

    customer_id: int
    frequency: int  # repeat purchases
    recency: float  # weeks between the first and the last purchase
    T: float  # noqa: N815  (the literature's name) weeks since the first purchase
    monetary_value: float  # average net order value, fen


@dataclass(frozen=True)
class ClvPrediction:
    expected_purchases: float  # over the horizon
    expected_spend_fen: float  # Gamma-Gamma's conditional expected value of one order
    expected_revenue_fen: float  # the product of the two
    probability_alive: float


@dataclass
class ClvPredictions:
    horizon_weeks: float
    predictions: dict[int, ClvPrediction] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)  # customer -> why it fell back
    seconds: float = 0.0


@dataclass
class ClvFit:
    """One fit of the two models. `ok` is False for a degenerate fit; `reason` says why."""

    ok: bool
    reason: str | None
    params: dict[str, float] = field(default_factory=dict)
    customers: int = 0  # rows in the BG/NBD fit
    repeat_customers: int = 0  # rows in the Gamma-Gamma fit
    seconds: dict[str, float] = field(default_factory=dict)
    _bg: Any = None
    _gg: Any = None

    def summary(self) -> dict[str, object]:
        """The run-level record: parameters, counts, timings, and the reason if degenerate."""
        return {"method": METHOD, "ok": self.ok, "reason": self.reason, "params": self.params,
                "bg_nbd_customers": self.customers,
                "gamma_gamma_customers": self.repeat_customers,
                "fit_method": "map", "priors": "pymc-marketing defaults",
                "library": _library_versions(),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}

    def predict(self, rows: Sequence[RfmRow], horizon_weeks: float) -> ClvPredictions:
        """Expected purchases, spend per order and revenue over `horizon_weeks` for `rows`.

        Any customer, in the fitted base or not (the fitted parameters are population-level);
        rows without a repeat purchase or with a non-positive monetary value are rejected, as
        is any prediction that is not finite.
        """
        out = ClvPredictions(horizon_weeks=horizon_weeks)
        if not self.ok:
            out.rejected = {r.customer_id: f"degenerate fit: {self.reason}" for r in rows}
            return out
        import numpy as np
        import pandas as pd

        started = time.perf_counter()
        target = []
        for r in rows:
            if r.frequency <= 0:
                out.rejected[r.customer_id] = "no repeat purchase"
            elif not r.monetary_value > 0:
                out.rejected[r.customer_id] = "average net order value is not positive"
            else:
                target.append(r)
        if target:
            ids = [r.customer_id for r in target]
            data = pd.DataFrame({
                "customer_id": np.array(ids, dtype=np.int64),
                "frequency": np.array([r.frequency for r in target], dtype=np.float64),
                "recency": np.array([r.recency for r in target], dtype=np.float64),
                "T": np.array([r.T for r in target], dtype=np.float64),
                "monetary_value": np.array([r.monetary_value for r in target],
                                           dtype=np.float64),
            })
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                purchases = _per_customer(
                    self._bg.expected_purchases(data=data, future_t=horizon_weeks))
                alive = _per_customer(self._bg.expected_probability_alive(data=data))
                spend = _per_customer(self._gg.expected_customer_spend(data=data))
            for cid, n, s, p in zip(ids, purchases, spend, alive, strict=True):
                if not (math.isfinite(n) and n >= 0):
                    out.rejected[cid] = f"expected purchases not finite and >= 0: {n!r}"
                elif not (math.isfinite(s) and s > 0):
                    out.rejected[cid] = f"expected spend not finite and > 0: {s!r}"
                else:
                    out.predictions[cid] = ClvPrediction(
                        expected_purchases=n, expected_spend_fen=s,
                        expected_revenue_fen=n * s,
                        probability_alive=p if math.isfinite(p) else float("nan"))
        out.seconds = time.perf_counter() - started
        return out


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("pymc-marketing", "pymc", "pytensor"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "?"
    return out


def _finite_positive(params: dict[str, float]) -> str | None:
    bad = [f"{k}={v!r}" for k, v in params.items() if not (math.isfinite(v) and v > 0)]
    return f"non-finite or non-positive parameters: {', '.join(bad)}" if bad else None


def fit_clv(rows: Sequence[RfmRow], *,
            min_repeat_customers: int = MIN_REPEAT_CUSTOMERS) -> ClvFit:
    """Fit BG/NBD on every row and Gamma-Gamma on the repeat customers, once, by MAP."""
    result = ClvFit(ok=False, reason=None, customers=len(rows))
    repeat = [r for r in rows if r.frequency > 0 and r.monetary_value > 0]
    result.repeat_customers = len(repeat)
    if len(repeat) < min_repeat_customers:
        result.reason = (f"too few repeat customers to fit: {len(repeat)} < "
                         f"{min_repeat_customers}")
        return result

    started = time.perf_counter()
    import numpy as np
    import pandas as pd
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    result.seconds["import"] = time.perf_counter() - started
    bg_data = pd.DataFrame({
        "customer_id": np.array([r.customer_id for r in rows], dtype=np.int64),
        "frequency": np.array([r.frequency for r in rows], dtype=np.float64),
        "recency": np.array([r.recency for r in rows], dtype=np.float64),
        "T": np.array([r.T for r in rows], dtype=np.float64),
    })
    gg_data = pd.DataFrame({
        "customer_id": np.array([r.customer_id for r in repeat], dtype=np.int64),
        "frequency": np.array([r.frequency for r in repeat], dtype=np.float64),
        "monetary_value": np.array([r.monetary_value for r in repeat], dtype=np.float64),
    })
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymc's FutureWarnings and optimiser chatter
            _quiet_pymc()
            t0 = time.perf_counter()
            bg = BetaGeoModel()
            bg.fit(data=bg_data, method="map", progressbar=False)
            result.seconds["fit_bg_nbd"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            gg = GammaGammaModel()
            gg.fit(data=gg_data, method="map", progressbar=False)
            result.seconds["fit_gamma_gamma"] = time.perf_counter() - t0
        result.params = {k: float(bg.fit_result[k].values.squeeze()) for k in BG_PARAMS}
        result.params.update({k: float(gg.fit_result[k].values.squeeze()) for k in GG_PARAMS})
    except Exception as err:  # the optimiser or the model raised: degenerate
        result.reason = f"fit failed: {type(err).__name__}: {err}"[:500]
        return result
    result.reason = _finite_positive(result.params)
    if result.reason is None and result.params["q"] <= 1:
        result.reason = f"Gamma-Gamma q={result.params['q']:.4g} <= 1: no population mean spend"
    if result.reason is None:
        result.ok, result._bg, result._gg = True, bg, gg
    return result


def _per_customer(values: object) -> list[float]:
    """A (chain, draw, customer_id) DataArray with one MAP draw -> one float per customer."""
    arr = values.values  # type: ignore[attr-defined]
    return arr.reshape(-1, arr.shape[-1])[0].tolist() if arr.ndim > 1 else arr.tolist()


def _quiet_pymc() -> None:
    for name in ("pymc", "pymc.stats.convergence", "pytensor", "pymc_marketing"):
        logging.getLogger(name).setLevel(logging.ERROR)
