"""Body step: thorax outline, wall layers (muscle, fat, skin), breasts, spine and aorta.

Outlines are radii (mm) on :data:`ANGLES` in the body frame, which is rotated by ``rotation`` from
the world (image) frame; ``y`` points posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import ANGLES, bump, harmonics, log_uniform, profile_at, uniform
from .priors import BodyPriors


@dataclass(frozen=True)
class Body:
    outline: dict[str, np.ndarray]  # cavity, muscle, fat, skin: outer radius of each layer
    breasts: tuple[tuple[float, float], ...]  # (angle, width) rad
    rotation: float  # rad
    spine: dict[str, float]  # vertebral body x, y, rx, ry; canal radius; post = cavity radius behind
    aorta: dict[str, float]  # x, y, r
    cavity_half_width: float  # mm
    fat_mm: float

    @property
    def width(self) -> float:
        """Left-right skin-to-skin width (mm)."""
        return 2 * float(self.outline["skin"][np.abs(np.cos(ANGLES)) > 0.99].mean())

    @property
    def height(self) -> float:
        """Anterior-posterior skin-to-skin height (mm)."""
        return float(np.ptp(self.outline["skin"] * np.sin(ANGLES)))

    def params(self) -> dict:
        return {
            "body": {
                "cavity_half_width_mm": self.cavity_half_width,
                "fat_mm": self.fat_mm,
                "width_mm": self.width,
                "height_mm": self.height,
                "breasts": len(self.breasts),
            }
        }

    def to_body(self, x, y):
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return x * c + y * s, y * c - x * s

    def to_world(self, xb, yb):
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return xb * c - yb * s, yb * c + xb * s

    def cavity_depth(self, x, y):
        """How far world points lie inside the thoracic cavity (mm, negative outside)."""
        xb, yb = self.to_body(x, y)
        return profile_at(np.arctan2(yb, xb), self.outline["cavity"]) - np.hypot(xb, yb)

    def grown(self, factor: float) -> Body:
        """The cavity enlarged (wall layers keep their thickness; spine and aorta move with its back)."""
        cavity = self.outline["cavity"]
        grown = cavity * factor
        shift = (factor - 1) * self.spine["post"]
        return Body(
            outline={k: v - cavity + grown for k, v in self.outline.items()},
            breasts=self.breasts,
            rotation=self.rotation,
            spine={**self.spine, "y": self.spine["y"] + shift},
            aorta={**self.aorta, "y": self.aorta["y"] + shift},
            cavity_half_width=self.cavity_half_width * factor,
            fat_mm=self.fat_mm,
        )


def draw_body(rng: np.random.Generator, p: BodyPriors) -> Body:
    """A superelliptic thorax with rippled wall layers, optional breasts, spine and aorta."""
    a = ANGLES
    sin = np.sin(a)
    front, back = np.maximum(0, -sin), np.maximum(0, sin)
    cx = uniform(rng, *p.cavity_half_width_mm)
    cy_front, cy_back = cx * uniform(rng, *p.cavity_front_ratio), cx * uniform(rng, *p.cavity_back_ratio)
    power = uniform(rng, *p.cavity_power)
    cb = np.where(sin < 0, cy_front, cy_back)
    cavity = (np.abs(np.cos(a) / cx) ** power + np.abs(sin / cb) ** power) ** (-1 / power)
    cavity *= (1 + harmonics(rng, 2, 6, 0.02)) * (1 - uniform(rng, *p.cavity_back_flattening) * back**4)
    fat0 = log_uniform(rng, *p.fat_mm)
    fat = fat0 * (
        uniform(rng, *p.fat_side_gain)
        + uniform(rng, *p.fat_front_gain) * front**2
        + uniform(rng, *p.fat_back_gain) * back**2
    )
    fat *= np.exp(harmonics(rng, 1, 6, 0.6))
    breasts = []
    if rng.random() < p.breasts_chance:
        right = [uniform(rng, *p.right_breast_angle)] if rng.random() < p.second_breast_chance else []
        for center in right + [uniform(rng, *p.breast_angle)]:
            height, width = uniform(rng, *p.breast_height_mm), uniform(rng, *p.breast_width)
            fat = fat + height * bump(center, width)
            breasts.append((center, width))
    muscle = (
        uniform(rng, *p.muscle_mm)
        + uniform(rng, *p.muscle_front_mm) * front**2
        + uniform(rng, *p.muscle_back_mm) * back**2
        + uniform(rng, *p.muscle_spine_mm) * bump(np.pi / 2, 0.35)
    ) * np.clip(1 + harmonics(rng, 2, 6, 0.15), 0.5, None)
    skin = uniform(rng, *p.skin_mm)
    outline = {
        "cavity": cavity,
        "muscle": cavity + muscle,
        "fat": cavity + muscle + fat,
        "skin": cavity + muscle + fat + skin,
    }
    rotation = uniform(rng, *p.rotation)
    post = float(cavity[np.argmin(np.abs(a - np.pi / 2))])
    vx, vy = uniform(rng, *p.vertebra_half_width_mm), uniform(rng, *p.vertebra_half_height_mm)
    spine_y = post + vy * uniform(rng, *p.vertebra_depth)
    spine_x = uniform(rng, *p.spine_x_mm)
    spine = {"x": spine_x, "y": spine_y, "rx": vx, "ry": vy, "canal": uniform(rng, *p.canal_mm), "post": post}
    aorta = {
        "x": spine_x + uniform(rng, *p.aorta_x_mm),
        "y": spine_y - vy - uniform(rng, *p.aorta_gap_mm),
        "r": uniform(rng, *p.aorta_radius_mm),
    }
    return Body(outline, tuple(breasts), rotation, spine, aorta, cx, fat0)
