"""Heart step: LV, RV, epicardial fat, papillary muscles, coronaries, defect and dark rim as angular
profiles around the LV centre (world frame); then its place in the thorax and the organs under it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .body import Body
from .geometry import ANGLES, HEART_CROP, bump, harmonics, profile_at, uniform, wrap
from .priors import HeartPriors, PlacementPriors, SlicePriors

MAX_REACH = 112  # mm, LV radius + wall + RV + fat may not exceed this
SIZES = ("lv_radius_mm", "wall_mm", "rv_width_mm", "width_mm")  # scaled with the heart


@dataclass(frozen=True)
class Heart:
    profiles: dict[str, np.ndarray]  # endo, endo_smooth, epi, rv, rv_wall, outer radii; wall thickness (mm)
    papillary: tuple[tuple[float, float, float, float], ...]  # (angle, depth, radial, tangential)
    coronaries: tuple[tuple[float, float], ...]  # (angle, radius mm)
    defect: dict | None  # angle, half_width (rad), extent (share of the wall from the endocardium)
    dark_rim: dict  # amplitude, width (mm), modulation (angular profile), decay (s)
    level: str  # apical, mid or basal
    theta_rv: float  # rad, direction of the RV
    sizes: dict[str, float]  # :data:`SIZES`, for the parameters

    @property
    def reach(self) -> float:
        """Largest radius of the heart and its fat (mm), plus a margin."""
        return float(self.profiles["outer"].max()) + 2.0

    def scaled(self, factor: float) -> Heart:
        return Heart(
            profiles={k: v * factor for k, v in self.profiles.items()},
            papillary=tuple((angle, d * factor, a * factor, b * factor) for angle, d, a, b in self.papillary),
            coronaries=self.coronaries,
            defect=self.defect,
            dark_rim=self.dark_rim,
            level=self.level,
            theta_rv=self.theta_rv,
            sizes={k: v * factor for k, v in self.sizes.items()},
        )

    def params(self) -> dict:
        s = self.sizes
        return {
            "heart": {
                "slice": self.level,
                "lv_radius_mm": s["lv_radius_mm"],
                "wall_mm": s["wall_mm"],
                "rv_width_mm": s["rv_width_mm"],
                "rv_angle_deg": math.degrees(self.theta_rv),
                "width_mm": s["width_mm"],
                "papillary_muscles": len(self.papillary),
            }
        }


def draw_heart(
    rng: np.random.Generator, p: HeartPriors, defect_kind: str, motion_reach: float, max_pixel: float
) -> Heart:
    """A heart at one slice level, shrunk if need be to fit the crop with its motion at the coarsest pixel."""
    level = str(rng.choice(p.levels, p=p.level_chances))
    at_level: SlicePriors = getattr(p, level)
    while True:
        r_lv = uniform(rng, *at_level.lv_radius_mm)
        wall = uniform(rng, *at_level.wall_mm)
        rv_width = uniform(rng, *at_level.rv_width_mm)
        fat0 = uniform(rng, *p.epicardial_fat_mm)
        groove = uniform(rng, *p.groove_fat_mm)
        if (
            r_lv + wall + rv_width + 4 + fat0 + groove < MAX_REACH
            and 2 * (r_lv + wall) + rv_width + 6 > at_level.min_width_mm
        ):
            break
    a = ANGLES
    axis, ratio = rng.uniform(0, np.pi), uniform(rng, *p.lv_axis_ratio)
    ellipse = ratio / np.sqrt((ratio * np.cos(a - axis)) ** 2 + np.sin(a - axis) ** 2)
    endo_smooth = r_lv * ellipse * (1 + harmonics(rng, 2, 7, 0.03))
    trabeculae = np.zeros_like(a)
    for _ in range(int(rng.integers(p.trabeculae[0], p.trabeculae[1] + 1))):
        trabeculae += uniform(rng, *p.trabecula_mm) * bump(
            rng.uniform(-np.pi, np.pi), uniform(rng, *p.trabecula_width)
        )
    endo = endo_smooth - trabeculae
    thickness = wall * np.clip(1 + harmonics(rng, 1, 3, 0.12), 0.6, 1.5)
    epi = endo_smooth + thickness
    theta_rv = uniform(rng, *np.radians(p.rv_angle_deg))
    half = np.radians(uniform(rng, *at_level.rv_half_angle_deg))
    u = wrap(a - theta_rv) / half
    crescent = np.clip(1 - np.abs(u) ** 2, 0, None) ** uniform(rng, *p.rv_crescent_power) * (
        1 + uniform(rng, *p.rv_skew) * u
    )
    rv = rv_width * np.clip(crescent * (1 + harmonics(rng, 3, 14, 0.08, decay=0.5)), 0, None)
    rv_wall = uniform(rng, *p.rv_wall_mm) * np.clip((1.3 - np.abs(u)) / 0.3, 0, 1)
    fat = fat0 * np.clip(1 + harmonics(rng, 1, 4, 0.5), 0, None) + uniform(rng, *p.rv_fat_mm) * np.clip(
        1 - u**2, 0, None
    )
    for side in (-1, 1):
        fat += (
            groove
            * uniform(rng, *p.groove_gain)
            * bump(theta_rv + side * half * uniform(rng, *p.groove_position), uniform(rng, *p.groove_width))
        )
    profiles = {
        "endo": endo,
        "endo_smooth": endo_smooth,
        "epi": epi,
        "rv": epi + rv,
        "rv_wall": epi + rv + rv_wall,
        "outer": epi + rv + rv_wall + fat,
        "thickness": thickness,
    }
    papillary = []
    if rng.random() < at_level.papillary_chance:
        (low, high), (low2, high2) = p.papillary_angles_deg
        for offset in (uniform(rng, low, high), -uniform(rng, low2, high2)):
            angle = theta_rv + np.radians(offset)
            radial = uniform(rng, *p.papillary_radial_mm) * r_lv / 22
            tangential = uniform(rng, *p.papillary_tangential_mm) * r_lv / 22
            depth = float(profile_at(angle, endo_smooth)) - radial * uniform(rng, *p.papillary_depth)
            papillary.append((angle, depth, radial, tangential))
    coronaries = tuple(
        (theta_rv + side * half * uniform(rng, *p.coronary_position), uniform(rng, *p.coronary_radius_mm))
        for side in (-1, 1)
        if rng.random() < p.coronary_chance
    )
    defect = None
    if defect_kind != "none":
        defect = {
            "angle": rng.uniform(-np.pi, np.pi),
            "half_width": uniform(rng, *np.radians(p.defect_half_width_deg)),
            "extent": 1.0 if defect_kind == "transmural" else uniform(rng, *p.subendocardial_extent),
        }
    dark_rim = {
        "amplitude": uniform(rng, *p.dark_rim_amplitude) if rng.random() < p.dark_rim_chance else 0.0,
        "width": uniform(rng, *p.dark_rim_width_mm),
        "modulation": np.clip(0.7 + harmonics(rng, 1, 4, 0.4), 0.2, 1.0),
        "decay": uniform(rng, *p.dark_rim_decay_s),
    }
    width = max(float(np.ptp(profiles["rv_wall"] * np.cos(a - turn))) for turn in np.linspace(0, np.pi, 18))
    sized = dict(zip(SIZES, (r_lv, wall, rv_width, width), strict=True))
    heart = Heart(profiles, tuple(papillary), coronaries, defect, dark_rim, level, theta_rv, sized)
    limit = (HEART_CROP / 2 - 4) * max_pixel - motion_reach - 1.0  # fits the crop at the coarsest pixel
    return heart.scaled(limit / heart.reach) if heart.reach > limit else heart


@dataclass(frozen=True)
class Placement:
    body: Body  # grown if the heart did not fit
    heart: Heart  # shrunk a little at each growth
    lv_center: tuple[float, float]  # world (x, y) mm
    organs: tuple[dict, ...]  # kind, x, y, radius (angular profile), diaphragm (mm)


def place_heart(rng: np.random.Generator, p: PlacementPriors, body: Body, heart: Heart) -> Placement:
    """The heart against the anterior chest wall, clear of spine and aorta (growing the thorax if needed)."""
    a = ANGLES
    gap = uniform(rng, *p.wall_gap_mm)
    for attempt in range(40):
        outline = heart.profiles["outer"]
        ox, oy = outline * np.cos(a), outline * np.sin(a)
        spine, aorta = body.spine, body.aorta
        spine_x, spine_y = body.to_world(spine["x"], spine["y"] - spine["ry"])
        aorta_x, aorta_y = body.to_world(aorta["x"], aorta["y"])
        xh = uniform(rng, *p.lv_x_mm)
        candidates = np.arange(-130.0, 80.0, 1.0)
        depth = np.array([body.cavity_depth(xh + ox, yh + oy).min() for yh in candidates])
        clear = np.array(
            [
                min(
                    np.hypot(xh + ox - aorta_x, yh + oy - aorta_y).min() - aorta["r"],
                    np.hypot(xh + ox - spine_x, yh + oy - spine_y).min() - spine["rx"],
                )
                > 4
                for yh in candidates
            ]
        )
        valid = np.flatnonzero((depth >= gap) & clear)
        if len(valid):
            yh = candidates[valid[0]] + min(
                uniform(rng, *p.lv_y_extra_mm), candidates[valid[-1]] - candidates[valid[0]]
            )
            break
        if attempt % 2:
            body, heart = body.grown(1.04), heart.scaled(0.98)
        gap = max(0.0, gap - 1)
    else:
        raise RuntimeError("no room for the heart in the drawn thorax")
    return Placement(body, heart, (xh, yh), draw_organs(rng, p, heart, (xh, yh)))


def draw_organs(
    rng: np.random.Generator, p: PlacementPriors, heart: Heart, lv_center: tuple[float, float]
) -> tuple[dict, ...]:
    """Liver (lower left), optionally stomach and spleen (lower right) as irregular blobs under the heart."""
    xh, yh = lv_center
    kinds = [("liver", *(uniform(rng, *r) for r in p.liver))]
    if rng.random() < p.stomach_chance:
        kinds.append(("stomach", *(uniform(rng, *r) for r in p.stomach)))
    if rng.random() < p.spleen_chance:
        kinds.append(("spleen", *(uniform(rng, *r) for r in p.spleen)))
    organs = []
    for kind, direction_deg, a, b in kinds:
        direction = math.radians(direction_deg)
        turn = rng.uniform(0, np.pi)
        power = uniform(rng, *p.organ_power)
        angle = ANGLES - turn
        radius = (np.abs(np.cos(angle) / a) ** power + np.abs(np.sin(angle) / b) ** power) ** (-1 / power)
        radius *= 1 + harmonics(rng, 2, 6, 0.05)
        toward_heart = float(profile_at(direction + np.pi, radius))
        heart_side = float(profile_at(direction, heart.profiles["outer"]))
        # all three gaps are drawn whatever the organ, as the seeds' streams expect
        gaps = dict(
            liver=uniform(rng, *p.liver_gap_mm),
            stomach=uniform(rng, *p.stomach_gap_mm),
            spleen=uniform(rng, *p.spleen_gap_mm),
        )
        distance = heart_side + gaps[kind] + toward_heart
        organs.append(
            {
                "kind": kind,
                "x": xh + distance * math.cos(direction),
                "y": yh + distance * math.sin(direction),
                "radius": radius,
                "diaphragm": uniform(rng, *p.diaphragm_mm),
            }
        )
    return tuple(organs)
