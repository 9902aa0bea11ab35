"""Painting step: the fine grids, then the static body wall, the breathing lungs and abdomen, and the
heart as three layers of tissue-component maps, with the heart's mask weights.

The fine anatomy (ribs, vessels, arms, stomach, textures) is drawn here from the paint stream, within
:class:`~.priors.PaintPriors`; the coil, drawn after the painting, continues that stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .acquisition import Acquisition
from .body import Body
from .geometry import (
    ANGLES,
    SUPERSAMPLE,
    Grid,
    Layer,
    Painter,
    Polar,
    Textures,
    bump,
    ellipse_distance,
    log_uniform,
    profile_at,
    random_fields,
    soft_inside,
    uniform,
    wrap,
)
from .heart import Placement
from .motion import Motion
from .priors import PaintPriors


@dataclass(frozen=True)
class Grids:
    fov: Grid  # the field of view on the fine grid, with the fold-over rows above and below
    canvas: Grid  # the fov with a margin, where the moving lungs and abdomen are painted
    margin: int  # fine pixels
    box_r0: int  # heart box, fine fov pixels
    box_c0: int
    box_size: int
    heart_px: np.ndarray  # (T, 2) heart shift per frame, fine pixels
    cavity_px: np.ndarray  # (T, 2) lung and abdomen shift per frame
    blur_px: np.ndarray  # (3, 2) positions of the heart during one shot

    @property
    def step(self) -> float:
        return self.fov.step

    @property
    def heart(self) -> Grid:
        """The heart box as a grid of its own."""
        step = self.fov.step
        return Grid(
            self.fov.x0 + self.box_c0 * step, self.fov.y0 + self.box_r0 * step, step, (self.box_size,) * 2
        )


def make_grids(acq: Acquisition, motion: Motion, placed: Placement, edge: float) -> Grids:
    """The FOV grid (with fold-over rows), the larger canvas the moving abdomen is drawn on, the heart box."""
    s, step = SUPERSAMPLE, acq.step
    top, bottom = acq.fold
    ext = (acq.rows * s + top + bottom, acq.cols * s)
    x0 = acq.fov_center[0] - acq.cols / 2 * acq.pixel
    y0 = acq.fov_center[1] - acq.rows / 2 * acq.pixel - top * step
    m = int(math.ceil((motion.cavity_reach + 1) / step)) + 1
    half = int(math.ceil((placed.heart.reach + 3 * edge) / step))
    xh, yh = placed.lv_center
    size = 2 * half + 1
    r0 = int(round((yh - y0) / step)) - half
    c0 = int(round((xh - x0) / step)) - half
    heart_px = np.rint(motion.heart_shift / step).astype(int)
    # cardiac motion during the shot: the heart is seen at three positions along one direction
    blur, angle = acq.recon["heart_blur_mm"] / step, acq.recon["heart_blur_angle"]
    blur_px = np.rint(np.outer([-1, 0, 1], [math.sin(angle), math.cos(angle)]) * blur).astype(int)
    reach = np.abs(blur_px).max()
    lo_r, lo_c = r0 + heart_px.min(0)[0] - reach, c0 + heart_px.min(0)[1] - reach
    hi_r, hi_c = r0 + size + heart_px.max(0)[0] + reach, c0 + size + heart_px.max(0)[1] + reach
    if lo_r < 0 or lo_c < 0 or hi_r > ext[0] or hi_c > ext[1]:
        raise RuntimeError("heart box outside the field of view")
    return Grids(
        fov=Grid(x0, y0, step, ext),
        canvas=Grid(x0 - m * step, y0 - m * step, step, (ext[0] + 2 * m, ext[1] + 2 * m)),
        margin=m,
        box_r0=r0,
        box_c0=c0,
        box_size=size,
        heart_px=heart_px,
        cavity_px=np.rint(motion.cavity_shift / step).astype(int),
        blur_px=blur_px,
    )


@dataclass(frozen=True)
class Painted:
    static: Layer  # on the fov grid
    cavity: Layer  # on the canvas
    heart: Layer  # on the heart box
    weights: dict[str, np.ndarray]  # lv_blood, rv_blood, myocardium, defect occupancy on the heart box


def paint(rng: np.random.Generator, p: PaintPriors, grids: Grids, placed: Placement, edge: float) -> Painted:
    """The three layers, textured by random fields shared across tissues (fine, mid, coarse scale)."""
    lengths = [uniform(rng, *length) for length in p.texture_mm]
    textures = Textures(random_fields(rng, grids.canvas.shape, grids.step, lengths), rng)
    m = grids.margin
    fov_box = (slice(m, m + grids.fov.shape[0]), slice(m, m + grids.fov.shape[1]))
    static = _paint_static(rng, p, textures.crop(fov_box), grids, placed.body, edge)
    cavity = _paint_cavity(rng, p, textures, grids, placed, edge)
    box = (
        slice(m + grids.box_r0, m + grids.box_r0 + grids.box_size),
        slice(m + grids.box_c0, m + grids.box_c0 + grids.box_size),
    )
    heart, weights = _paint_heart(rng, p, textures.crop(box), grids, placed, edge)
    return Painted(static, cavity, heart, weights)


def _paint_static(
    rng: np.random.Generator, p: PaintPriors, tex: Textures, grids: Grids, body: Body, edge: float
) -> Layer:
    """Body wall, ribs, sternum, spine, aorta, oesophagus, arms, breasts, air: they do not move."""
    grid = grids.fov
    layer = Painter(grid.shape)
    x, y = grid.axes()
    xb, yb = body.to_body(x, y)
    polar = Polar(xb, yb)
    marrow_tex, muscle_tex = tex.texture(fine=0.2, mid=0.1), tex.texture(fine=0.07, mid=0.06)

    def local(xc_b, yc_b, half):
        box = grid.box(*body.to_world(xc_b, yc_b), half)
        lx, ly = grid.axes(box)
        return box, body.to_body(lx, ly)

    def bone(xc_b, yc_b, a, b, angle, cortex=1.3):
        box, (lx, ly) = local(xc_b, yc_b, max(a, b) + 3)
        d = ellipse_distance(lx, ly, xc_b, yc_b, a, b, angle)
        layer.paint("marrow", soft_inside(d + cortex, edge), marrow_tex[box], box)
        layer.paint(None, soft_inside(d, edge), box=box)

    cavity = body.outline["cavity"]
    step_angle = uniform(rng, *p.rib_spacing_mm) / float(cavity.mean())
    for angle in np.arange(-np.pi, np.pi, step_angle) + rng.uniform(0, step_angle):
        if (
            abs(wrap(angle - np.pi / 2)) < 0.45
            or abs(wrap(angle + np.pi / 2)) < 0.12
            or rng.random() > p.rib_chance
        ):
            continue
        radius = float(profile_at(angle, cavity)) + uniform(rng, *p.rib_offset_mm)
        xc_b, yc_b = radius * math.cos(angle), radius * math.sin(angle)
        a, b, turn = (
            uniform(rng, *p.rib_half_length_mm),
            uniform(rng, *p.rib_half_thickness_mm),
            angle + np.pi / 2 + 0.3 * rng.standard_normal(),
        )
        if abs(wrap(angle + np.pi / 2)) < 0.7:  # costal cartilage: grey, no cortex
            box, (lx, ly) = local(xc_b, yc_b, a + 3)
            layer.paint(
                "skeletal", soft_inside(ellipse_distance(lx, ly, xc_b, yc_b, a, b, turn), edge), 0.8, box
            )
        else:
            bone(xc_b, yc_b, a, b, turn)
    if rng.random() < p.sternum_chance:
        radius = float(profile_at(-np.pi / 2, cavity)) + uniform(rng, *p.sternum_offset_mm)
        x = uniform(rng, *p.sternum_x_mm)
        bone(x, -radius, uniform(rng, *p.sternum_half_width_mm), uniform(rng, *p.sternum_half_height_mm), 0.0)
    for side in (-1, 1):  # internal mammary arteries
        angle = -np.pi / 2 + side * uniform(rng, *p.mammary_angle)
        radius = float(profile_at(angle, cavity)) - uniform(rng, *p.mammary_depth_mm)
        mx, my, size = radius * math.cos(angle), radius * math.sin(angle), uniform(rng, *p.mammary_radius_mm)
        box, (lx, ly) = local(mx, my, size + 3)
        layer.paint(
            "aorta",
            soft_inside(np.hypot(lx - mx, ly - my) - size, edge) * uniform(rng, *p.mammary_fill),
            1.0,
            box,
        )
    sp = body.spine
    bone(sp["x"], sp["y"], sp["rx"], sp["ry"], 0.0, cortex=1.5)
    canal_y = sp["y"] + sp["ry"] + sp["canal"] + 2
    box, (lx, ly) = local(sp["x"], canal_y, sp["canal"] + 3)
    layer.paint(
        "csf",
        soft_inside(ellipse_distance(lx, ly, sp["x"], canal_y, sp["canal"], sp["canal"] * 0.8), edge),
        1.0,
        box,
    )
    for side in (-1, 1):
        bone(sp["x"] + side * (sp["canal"] + 4), canal_y + 2, 7, 3, side * 0.6)
    bone(
        sp["x"],
        canal_y + sp["canal"] + uniform(rng, *p.spinous_gap_mm),
        uniform(rng, *p.spinous_half_width_mm),
        uniform(rng, *p.spinous_half_length_mm),
        np.pi / 2,
    )
    ao = body.aorta
    box, (lx, ly) = local(ao["x"], ao["y"], ao["r"] + 4)
    d = np.hypot(lx - ao["x"], ly - ao["y"]) - ao["r"]
    layer.paint("aorta", soft_inside(d + 1.5, edge), 1.0, box)
    layer.paint("skeletal", soft_inside(d, edge), 1.0, box)
    if rng.random() < p.oesophagus_chance:
        ex, ey = (
            sp["x"] + uniform(rng, *p.oesophagus_x_mm),
            sp["y"] - sp["ry"] - uniform(rng, *p.oesophagus_gap_mm),
        )
        box, (lx, ly) = local(ex, ey, 12)
        a, b = (uniform(rng, *r) for r in p.oesophagus_half_axes_mm)
        turn = rng.uniform(0, np.pi)
        d = ellipse_distance(lx, ly, ex, ey, a, b, turn)
        if rng.random() < p.oesophagus_air_chance:
            layer.paint(None, soft_inside(d + 3, edge), box=box)
        layer.paint("skeletal", soft_inside(d, edge), muscle_tex[box], box)
    if rng.random() < p.arms_chance:
        _paint_arms(rng, p, layer, tex, local, body, edge)
    fat_tex = tex.fat(uniform(rng, *p.fat_septa))
    for center, width in body.breasts:
        weight = polar.at(np.clip(2 * bump(center, width), 0, 1))
        gland = weight * special.expit((tex.mix(1) - uniform(rng, *p.gland_threshold)) / 0.25)
        layer.paint(
            "gland",
            gland
            * soft_inside(polar.distance(body.outline["fat"]), edge)
            * (1 - soft_inside(polar.distance(body.outline["muscle"]) - 8, edge)),
            tex.texture(fine=0.1),
        )
    outline = body.outline
    inner = [soft_inside(polar.distance(outline[k]), edge) for k in ("skin", "fat", "muscle", "cavity")]
    layer.bands(
        [
            (1 - inner[0], {}),
            (inner[0] - inner[1], {"skin": tex.texture(fine=0.05)}),
            (inner[1] - inner[2], {"fat": fat_tex}),
            (inner[2] - inner[3], {"skeletal": muscle_tex}),
        ]
    )
    return layer.freeze()


def _paint_arms(
    rng: np.random.Generator, p: PaintPriors, layer: Painter, tex: Textures, local, body: Body, edge: float
):
    """Upper arms beside the chest: skin, fat, muscle, humerus."""
    width = float(body.outline["skin"][np.argmin(np.abs(ANGLES))])
    for side in (-1, 1):
        radius = uniform(rng, *p.arm_radius_mm)
        xc, yc = side * (width + uniform(rng, *p.arm_gap_mm) + radius), uniform(rng, *p.arm_y_mm)
        box, (lx, ly) = local(xc, yc, radius + 3)
        d = np.hypot(lx - xc, ly - yc) - radius
        fat = uniform(rng, *p.arm_fat_mm)
        hx, hy = xc + uniform(rng, *p.humerus_offset_mm), yc + uniform(rng, *p.humerus_offset_mm)
        dh = np.hypot(lx - hx, ly - hy) - uniform(rng, *p.humerus_radius_mm)
        layer.paint("marrow", soft_inside(dh + 3, edge), 1.0, box)
        layer.paint(None, soft_inside(dh, edge), box=box)
        outer, inner = soft_inside(d, edge), soft_inside(d + 1.5, edge)
        core = soft_inside(d + 1.5 + fat, edge)
        layer.bands(
            [
                (outer - inner, {"skin": 1.0}),
                (inner - core, {"fat": tex.crop(box).fat(0.3)}),
                (core, {"skeletal": 1.0}),
            ],
            box,
        )


def _paint_cavity(
    rng: np.random.Generator, p: PaintPriors, tex: Textures, grids: Grids, placed: Placement, edge: float
) -> Layer:
    """Lungs with vessels, diaphragm, liver with vessels, stomach, spleen (they move with breathing)."""
    grid, body, heart = grids.canvas, placed.body, placed.heart
    layer = Painter(grid.shape)
    x, y = grid.axes()
    xh, yh = placed.lv_center

    def organ_distance(organ, px, py):
        return Polar(px - organ["x"], py - organ["y"]).distance(organ["radius"])

    # pulmonary vessels: small partial-volume disks in the lungs, arteries and veins
    outline = float(heart.profiles["outer"].max())
    for _ in range(int(rng.integers(p.lung_vessels[0], p.lung_vessels[1] + 1))):
        px, py = (
            np.array([uniform(rng, xh + p.lung_vessel_x_mm[0], xh + p.lung_vessel_x_mm[1])]),
            np.array([uniform(rng, yh + p.lung_vessel_y_mm[0], yh + p.lung_vessel_y_mm[1])]),
        )
        if (
            np.hypot(px - xh, py - yh)[0] < outline * 0.8
            or body.cavity_depth(px, py)[0] < 3
            or any(organ_distance(o, px, py)[0] < 5 for o in placed.organs)
        ):
            continue
        radius = log_uniform(rng, *p.lung_vessel_radius_mm)
        box = grid.box(px[0], py[0], radius * 2.5 + 2)
        lx, ly = grid.axes(box)
        d = ellipse_distance(
            lx,
            ly,
            px[0],
            py[0],
            radius * uniform(rng, *p.lung_vessel_elongation),
            radius,
            rng.uniform(0, np.pi),
        )
        key = "pulm_artery" if rng.random() < p.pulmonary_artery_chance else "pulm_vein"
        layer.paint(key, soft_inside(d, edge) * uniform(rng, *p.lung_vessel_fill), 1.0, box)
    for organ in placed.organs:
        d = organ_distance(organ, x, y)
        occupancy = soft_inside(d, edge)
        if organ["kind"] == "liver":
            for _ in range(int(rng.integers(p.liver_vessels[0], p.liver_vessels[1] + 1))):
                angle, depth = rng.uniform(-np.pi, np.pi), uniform(rng, *p.liver_vessel_depth)
                reach = depth * float(profile_at(angle, organ["radius"]))
                px, py = organ["x"] + reach * math.cos(angle), organ["y"] + reach * math.sin(angle)
                radius = uniform(rng, *p.liver_vessel_radius_mm)
                box = grid.box(px, py, radius * 2 + 2)
                lx, ly = grid.axes(box)
                dv = ellipse_distance(
                    lx,
                    ly,
                    px,
                    py,
                    radius * uniform(rng, *p.liver_vessel_elongation),
                    radius,
                    rng.uniform(0, np.pi),
                )
                layer.paint("portal", soft_inside(dv, edge) * occupancy[box], 1.0, box)
            layer.paint("liver", occupancy, tex.texture(fine=0.04, mid=0.06, coarse=0.05))
        elif organ["kind"] == "stomach":
            wall = uniform(rng, *p.stomach_wall_mm)
            inner = soft_inside(d + wall, edge)
            top = organ["y"] - float(organ["radius"].max()) * uniform(rng, *p.stomach_level)
            gas = special.expit((top - y) / edge) if rng.random() < p.stomach_gas_chance else 0.0
            content = tex.texture(fine=0.05, mid=0.1) * uniform(rng, *p.stomach_content)
            layer.bands(
                [
                    (inner * gas, {}),
                    (inner * (1 - gas), {"gut_content": content}),
                    (occupancy - inner, {"gut_wall": tex.texture(fine=0.05)}),
                ]
            )
        else:
            layer.paint("spleen", occupancy, tex.texture(mid=0.04))
        layer.paint("skeletal", soft_inside(d - organ["diaphragm"], edge), 1.0)  # diaphragm
    layer.paint("lung", np.ones(grid.shape, np.float32), tex.texture(fine=0.25, mid=0.45, coarse=0.3))
    return layer.freeze()


def _paint_heart(
    rng: np.random.Generator, p: PaintPriors, tex: Textures, grids: Grids, placed: Placement, edge: float
) -> tuple[Layer, dict[str, np.ndarray]]:
    """Heart and epicardial fat in a box around the LV centre; returns the layer and the mask weights."""
    grid, heart = grids.heart, placed.heart
    h = heart.profiles
    layer = Painter(grid.shape)
    x, y = grid.axes()
    xh, yh = placed.lv_center
    polar = Polar(x - xh, y - yh)
    r, theta = polar.r, polar.theta
    myo_tex, blood_tex = tex.texture(fine=0.035), tex.texture(fine=0.015)
    for angle, size in heart.coronaries:
        radius = float(profile_at(angle, (h["rv_wall"] + h["outer"]) / 2))
        cx, cy = xh + radius * math.cos(angle), yh + radius * math.sin(angle)
        layer.paint("coronary", soft_inside(np.hypot(x - cx, y - cy) - size, edge))
    for angle, depth, radial, tangential in heart.papillary:
        cx, cy = xh + depth * math.cos(angle), yh + depth * math.sin(angle)
        layer.paint(
            "myo_epi", soft_inside(ellipse_distance(x, y, cx, cy, radial, tangential, angle), edge), myo_tex
        )
    inside = {k: soft_inside(polar.distance(h[k]), edge) for k in ("endo", "epi", "rv", "rv_wall", "outer")}
    myo = inside["epi"] - inside["endo"]
    from_endo = r - polar.at(h["endo_smooth"])
    thickness = polar.at(h["thickness"])
    endo_share = special.expit((0.5 * thickness - from_endo) / 1.0)
    defect = np.zeros_like(r)
    if heart.defect is not None:
        dd = heart.defect
        angular = special.expit((dd["half_width"] - np.abs(wrap(theta - dd["angle"]))) / np.radians(6))
        radial = special.expit((dd["extent"] * thickness - from_endo) / 0.8) if dd["extent"] < 1 else 1.0
        defect = angular * radial
    remote = myo_tex * (1 - defect)
    w_lv, w_myo, w_rv, _, _ = layer.bands(
        [
            (inside["endo"], {"lv_blood": blood_tex}),
            (
                myo,
                {
                    "myo_endo": remote * endo_share,
                    "myo_epi": remote * (1 - endo_share),
                    "myo_defect": myo_tex * defect,
                },
            ),
            (inside["rv"] - inside["epi"], {"rv_blood": blood_tex}),
            (inside["rv_wall"] - inside["rv"], {"myo_epi": myo_tex}),
            (inside["outer"] - inside["rv_wall"], {"fat": tex.fat(uniform(rng, *p.epicardial_septa))}),
        ]
    )
    if heart.defect is None:
        layer.maps.pop("myo_defect", None)
    layer.add("lv_inflow", w_lv * uniform(rng, *p.lv_inflow) * special.expit(2 * tex.mix(1)))
    layer.add("rv_inflow", w_rv * uniform(rng, *p.rv_inflow) * special.expit(2 * tex.mix(1)))
    layer.add("myo_hetero", w_myo * uniform(rng, *p.myo_heterogeneity) * special.expit(2 * tex.mix(1)))
    rim = heart.dark_rim
    if rim["amplitude"] > 0:
        from_trabeculae = np.maximum(polar.distance(h["endo"]), 0)
        layer.add(
            "dark_rim",
            w_myo * np.exp(-0.5 * (from_trabeculae / rim["width"]) ** 2) * polar.at(rim["modulation"]),
        )
    weights = {"lv_blood": w_lv, "rv_blood": w_rv, "myocardium": w_myo, "defect": w_myo * defect}
    return layer.freeze(), weights
