"""Tracer step: gadolinium concentration of every tissue component (bolus, pulmonary transit,
recirculation, tissue impulse responses), then its saturation-recovery signal at the frame times."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .geometry import log_uniform, uniform
from .priors import SignalPriors, TracerPriors
from .timing import Timing

TRACER_STEP = 0.1  # s, time grid of the tracer kinetics

# relative proton density, T1 at 1.5 T and at 3 T (s)
TISSUES = {
    "blood": (0.92, 1.55, 1.85),
    "myocardium": (0.80, 1.00, 1.20),
    "skeletal": (0.75, 1.00, 1.35),
    "skin": (0.70, 0.85, 1.05),
    "fat": (0.95, 0.27, 0.37),
    "liver": (0.72, 0.58, 0.81),
    "spleen": (0.82, 1.05, 1.30),
    "marrow": (0.80, 0.50, 0.58),
    "csf": (1.00, 4.00, 4.30),
    "lung": (0.16, 1.20, 1.30),
    "gland": (0.80, 1.00, 1.30),
    "gut_content": (0.95, 2.00, 2.40),
}
# tissue component -> tissue whose PD and T1 it has
COMPONENT_TISSUE = {
    "lv_blood": "blood",
    "rv_blood": "blood",
    "aorta": "blood",
    "coronary": "blood",
    "pulm_artery": "blood",
    "pulm_vein": "blood",
    "portal": "blood",
    "myo_endo": "myocardium",
    "myo_epi": "myocardium",
    "myo_defect": "myocardium",
    "skeletal": "skeletal",
    "gut_wall": "skeletal",
    "skin": "skin",
    "fat": "fat",
    "liver": "liver",
    "spleen": "spleen",
    "marrow": "marrow",
    "csf": "csf",
    "lung": "lung",
    "gland": "gland",
    "gut_content": "gut_content",
}


def gamma_kernel(t: np.ndarray, mean: float, shape: float) -> np.ndarray:
    """Discrete gamma density on ``t >= 0`` with the given mean (s) and shape, summing to 1."""
    scale = mean / shape
    tt = np.maximum(t, 0)
    log = (shape - 1) * np.log(np.maximum(tt, 1e-9)) - tt / scale
    kernel = np.where(t > 0, np.exp(log - log[t > 0].max()), 0.0)
    return kernel / kernel.sum()


def convolve(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.convolve(signal, kernel)[: len(signal)]


def delay_curve(t: np.ndarray, curve: np.ndarray, delay: float) -> np.ndarray:
    return np.interp(t - delay, t, curve, left=0.0, right=curve[-1])


def tissue_curve(
    t: np.ndarray, c_in: np.ndarray, flow: float, vb: float, ve: float, ps: float, delay: float
) -> np.ndarray:
    """Tissue concentration: ``F * (C_in ⊗ R)``, R a Fermi-smoothed adiabatic-approximation impulse response.

    ``flow`` and ``ps`` in ml/min/ml; R is 1 through the capillary transit ``vb/F``, then the
    extracted fraction ``E = 1 - exp(-PS/F)`` washes out of the interstitium ``ve`` at rate ``E F / ve``.
    """
    f = flow / 60
    extraction = 1 - math.exp(-ps / flow)
    transit = vb / f
    step = special.expit(-(t - transit) / (0.15 * transit + 0.25))
    response = step + extraction * (1 - step) * np.exp(-extraction * f * np.maximum(t - transit, 0) / ve)
    return f * TRACER_STEP * convolve(delay_curve(t, c_in, delay), response)


@dataclass(frozen=True)
class Tracer:
    t: np.ndarray  # (N,) s, the tracer time grid
    conc: dict[str, np.ndarray]  # component -> (N,) mM
    params: dict  # contrast, perfusion, defect


def draw_tracer(
    rng: np.random.Generator,
    p: TracerPriors,
    timing: Timing,
    stress: bool,
    defect: dict | None,
    defect_kind: str,
) -> Tracer:
    """Gadolinium concentration (mM) of every tissue component on the tracer time grid."""
    t = np.arange(0, timing.times[-1] + 3.0, TRACER_STEP)
    bolus = gamma_kernel(t - timing.arrival, uniform(rng, *p.bolus_mean_s), uniform(rng, *p.bolus_shape))
    pulmonary = gamma_kernel(
        t,
        uniform(rng, *p.pulmonary_mean_stress_s) if stress else uniform(rng, *p.pulmonary_mean_rest_s),
        uniform(rng, *p.pulmonary_shape),
    )
    quick = uniform(rng, *p.quick_share)
    speed = p.stress_transit if stress else 1.0
    systemic = quick * gamma_kernel(
        t, uniform(rng, *p.quick_mean_s) * speed, uniform(rng, *p.quick_shape)
    ) + (1 - quick) * gamma_kernel(t, uniform(rng, *p.slow_mean_s) * speed, uniform(rng, *p.slow_shape))
    back = uniform(rng, *p.recirculation)
    rv = bolus
    for _ in range(3):
        lv = convolve(rv, pulmonary)
        rv = bolus + back * convolve(lv, systemic)
    lv = convolve(rv, pulmonary)
    peak = log_uniform(rng, *p.peak_lv_mM)
    gain = peak / max(lv.max(), 1e-12)
    lv, rv = lv * gain, rv * gain
    flow = uniform(rng, *p.flow_stress) if stress else uniform(rng, *p.flow_rest)
    vb = uniform(rng, *p.blood_volume) * (p.stress_blood_volume if stress else 1.0)
    extraction = uniform(rng, *p.extraction_stress) if stress else uniform(rng, *p.extraction_rest)
    ve, delay = uniform(rng, *p.interstitial_volume), uniform(rng, *p.myocardial_delay_s)
    ps = -flow * math.log(1 - extraction)
    ratio = uniform(rng, *p.endo_epi_stress) if stress else uniform(rng, *p.endo_epi_rest)
    endo_flow, epi_flow = flow * 2 * ratio / (1 + ratio), flow * 2 / (1 + ratio)
    arterial = delay_curve(t, lv, uniform(rng, *p.aorta_delay_s))
    portal = convolve(lv, gamma_kernel(t, uniform(rng, *p.portal_mean_s), 3.0))
    conc = {
        "lv_blood": lv,
        "rv_blood": rv,
        "aorta": arterial,
        "coronary": delay_curve(t, lv, 0.3),
        "pulm_artery": delay_curve(t, rv, 0.4),
        "pulm_vein": delay_curve(t, lv, -0.6),
        "portal": portal,
        "myo_endo": tissue_curve(t, lv, endo_flow, vb, ve, ps, delay),
        "myo_epi": tissue_curve(t, lv, epi_flow, vb, ve, ps, delay),
        "skeletal": tissue_curve(t, arterial, uniform(rng, *p.skeletal_flow), 0.02, 0.12, 0.1, 0.5),
        "skin": tissue_curve(t, arterial, 0.1, 0.03, 0.2, 0.2, 0.5),
        "fat": tissue_curve(t, arterial, 0.03, 0.01, 0.05, 0.03, 0.5),
        "marrow": tissue_curve(t, arterial, 0.15, 0.05, 0.1, 0.15, 0.5),
        "gland": tissue_curve(t, arterial, 0.15, 0.03, 0.2, 0.2, 0.5),
        "liver": tissue_curve(t, 0.25 * arterial + 0.75 * portal, 1.0, 0.12, 0.25, 5.0, 0.5),
        "spleen": tissue_curve(t, arterial, uniform(rng, *p.spleen_flow), 0.2, 0.1, 1.0, 0.3),
        "gut_wall": tissue_curve(t, arterial, 0.4, 0.04, 0.2, 0.5, 0.3),
        "lung": 0.35 * (delay_curve(t, rv, 0.5) + delay_curve(t, lv, -0.5)) / 2,
        "csf": np.zeros_like(t),
        "gut_content": np.zeros_like(t),
    }
    defect_params = {"kind": "none"}
    if defect is not None:
        share = uniform(rng, *p.defect_flow_stress) if stress else uniform(rng, *p.defect_flow_rest)
        late = uniform(rng, *p.defect_delay_s)
        conc["myo_defect"] = tissue_curve(
            t,
            lv,
            flow * share,
            vb * uniform(rng, *p.defect_blood_volume),
            ve,
            ps * uniform(rng, *p.defect_ps),
            delay + late,
        )
        defect_params = {
            "kind": defect_kind,
            "angle_deg": math.degrees(defect["angle"]),
            "half_width_deg": math.degrees(defect["half_width"]),
            "extent": defect["extent"],
            "flow_ratio": share,
            "extra_delay_s": late,
        }
    params = {
        "contrast": {"peak_lv_mM": peak, "recirculation": back},
        "perfusion": {
            "flow_ml_min_g": flow,
            "endo_epi_ratio": ratio,
            "blood_volume": vb,
            "interstitial_volume": ve,
            "ps_ml_min_g": ps,
            "delay_s": delay,
        },
        "defect": defect_params,
    }
    return Tracer(t, conc, params)


@dataclass(frozen=True)
class Signals:
    curves: dict[str, np.ndarray]  # component -> (T,) float32 signal per unit map at the frame times
    params: dict  # signal, concentration_mM


def draw_signals(
    rng: np.random.Generator, p: SignalPriors, tracer: Tracer, at: np.ndarray, tesla: float, dark_rim: dict
) -> Signals:
    """Signal per unit map of every component at the frame times ``at`` (saturation recovery, T2* decay)."""
    t = tracer.t
    field = 0 if tesla == 1.5 else 1
    r1 = uniform(rng, *p.r1_15T_per_mM_s) if field == 0 else uniform(rng, *p.r1_3T_per_mM_s)
    delay_time, echo_time = uniform(rng, *p.saturation_delay_s), uniform(rng, *p.echo_time_s)
    r2s = uniform(rng, *p.r2star_blood_per_mM_s) * (1 + p.r2star_3T_gain * field)
    tissue = {
        name: (pd * uniform(rng, *p.proton_density), t1s[field] * uniform(rng, *p.t1))
        for name, (pd, *t1s) in TISSUES.items()
    }
    tissue["fat"] = (TISSUES["fat"][0] * uniform(rng, *p.fat_proton_density), tissue["fat"][1])

    def signal(conc, kind):
        pd, t1 = tissue[kind]
        r2 = r2s if kind == "blood" else r2s / 4
        return pd * (1 - np.exp(-delay_time * (1 / t1 + r1 * conc))) * np.exp(-echo_time * r2 * conc)

    grid = {key: signal(c, COMPONENT_TISSUE[key]) for key, c in tracer.conc.items()}
    out = {key: np.interp(at, t, s) for key, s in grid.items()}

    def lead(key, shift):
        return np.interp(at + shift, t, grid[key])

    out["lv_inflow"] = lead("lv_blood", uniform(rng, *p.lv_inflow_lead_s)) - out["lv_blood"]
    out["rv_inflow"] = lead("rv_blood", uniform(rng, *p.rv_inflow_lead_s)) - out["rv_blood"]
    out["myo_hetero"] = np.interp(at, t, signal(tracer.conc["myo_epi"] * 1.3, "myocardium")) - out["myo_epi"]
    lv = out["lv_blood"]
    rise = np.clip((lv - lv[0]) / max(lv.max() - lv[0], 1e-9), 0, 1)
    after = at - at[int(np.argmax(lv))]
    rise *= np.where(after > 0, np.exp(-np.maximum(after, 0) / dark_rim["decay"]), 1.0)
    out["dark_rim"] = -dark_rim["amplitude"] * out["myo_endo"] * rise
    params = {
        "signal": {
            "r1_per_mM_s": r1,
            "saturation_delay_s": delay_time,
            "echo_time_s": echo_time,
            "r2star_blood_per_mM_s": r2s,
        },
        "concentration_mM": {
            k: np.round(np.interp(at, t, tracer.conc[k]), 4).tolist()
            for k in ("lv_blood", "rv_blood", "myo_endo", "myo_epi", "myo_defect")
            if k in tracer.conc
        },
    }
    return Signals({k: v.astype(np.float32) for k, v in out.items()}, params)
