"""A small synthetic try-on dataset in the exact VITON-HD on-disk layout.

Every test and the demo need a dataset that (a) goes through the *same* reader as the real
VITON-HD release, so the fixture cannot drift from the real format, and (b) carries a task a
GAN can visibly learn in minutes on a CPU: the garment a person wears has exactly the colour and
pattern of its in-shop cloth image, so "put this cloth on this person" is checkable by looking at
the colour of the upper-clothes region.

Each person is drawn from a sampled skeleton (position, scale, arm angles, leg spread, sleeve and
trouser length, hair length vary per sample). The LIP label map is drawn first and the RGB image
is painted *from* it, so labels and pixels agree by construction; the BODY_25 keypoints are the
skeleton joints themselves, so they lie inside the drawn body parts.

Layout written (the conventions of VITON-HD's public release, checked against
shadow2496/VITON-HD ``datasets.py``/``test.py``, HR-VITON ``cp_dataset_test.py`` and a copy of
the release's ``datasets/test_pairs.txt``)::

    out/
      train_pairs.txt               "<person>.jpg <cloth>.jpg": paired, the cloth is the person's own
      test_pairs.txt                unpaired, as in the VITON-HD release: each test person with
                                    another test person's cloth (a derangement); the paired cloth
                                    of person X is always cloth/X.jpg
      synthetic.json                generator arguments and each sample's garment (a data card)
      {train,test}/
        image/00000_00.jpg          person, RGB JPEG
        cloth/00000_00.jpg          in-shop garment on white, RGB JPEG (same name as its wearer)
        cloth-mask/00000_00.jpg     garment mask, grayscale JPEG 0/255 (readers threshold >= 128)
        image-parse-v3/00000_00.png palette PNG, LIP labels 0-19
        image-parse-agnostic-v3.2/00000_00.png  parse with upper clothes, neck and arms removed
        agnostic-v3.2/00000_00.jpg  person with the upper body filled gray (128, 128, 128)
        agnostic-mask/00000_00_mask.png  the gray region, 0/255
        openpose_json/00000_00_keypoints.json  {"people": [{"pose_keypoints_2d": [x, y, c] * 25}]}
        openpose_img/00000_00_rendered.png     skeleton on black (OpenPose --disable_blending)

Label conventions follow VITON-HD's parse maps: label 10 is the *neck* there (VITON-HD's
``get_parse_agnostic`` removes ``parse == 10`` as the neck and its 13-class grouping maps 10 to
background), so the synthetic neck is drawn with label 10. "Left" is the person's left, which is
the image's right for a frontal person: LIP 14 (left arm) is drawn along the BODY_25 L-joints.
No ``image-densepose/`` is written (no cheap faithful synthetic equivalent).

Determinism: sample ``i`` draws from ``SeedSequence([seed, i])`` only, so it does not depend on
``n``; JPEG/PNG encoders are deterministic, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: Folders written under each split (VITON-HD spellings).
MODALITY_DIRS: tuple[str, ...] = (
    "image",
    "cloth",
    "cloth-mask",
    "image-parse-v3",
    "image-parse-agnostic-v3.2",
    "agnostic-v3.2",
    "agnostic-mask",
    "openpose_json",
    "openpose_img",
)
MARKER = "synthetic.json"
MIN_SIZE = (32, 24)
JPEG_QUALITY = 95
AGNOSTIC_GRAY = 128

# LIP labels used by the drawing.
BG, HAIR, UPPER, PANTS, NECK, FACE = 0, 2, 5, 9, 10, 13
L_ARM, R_ARM, L_LEG, R_LEG, L_SHOE, R_SHOE = 14, 15, 16, 17, 18, 19

#: The LIP/CIHP visualisation palette; only for viewing, readers use the indices.
LIP_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51),
    (254, 85, 0), (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85),
    (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220),
    (0, 254, 254), (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0),
)

# BODY_25 joint indices.
NOSE, NECK_J, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI, MID_HIP = range(9)
R_HIP, R_KNEE, R_ANK, L_HIP, L_KNEE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = range(9, 19)
L_BIG_TOE, L_SMALL_TOE, L_HEEL, R_BIG_TOE, R_SMALL_TOE, R_HEEL = range(19, 25)

#: BODY_25 limbs drawn in the rendered pose image, with OpenPose-like colours (RGB).
_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11),
    (8, 12), (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18),
    (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24),
)

_SKIN = ((241, 194, 167), (224, 172, 138), (198, 134, 99), (141, 85, 54), (255, 219, 190))
_HAIR = ((35, 25, 20), (80, 50, 30), (150, 110, 60), (20, 20, 20), (120, 40, 20))
_PANTS = ((30, 40, 80), (25, 25, 30), (190, 170, 130), (60, 90, 140), (90, 90, 95))
_SHOES = ((20, 20, 20), (240, 240, 240), (110, 70, 40), (150, 30, 30))


@dataclass(frozen=True)
class Garment:
    """The upper garment, shared by the person image and the cloth image.

    The pattern lives in garment coordinates (u across the torso, v from the shoulders to the
    hem, both 0..1 on the torso), so the worn and the flat garment show the same number of
    stripes or dots.
    """

    base: tuple[int, int, int]
    pattern: str  # "solid" | "stripes" | "dots"
    accent: tuple[int, int, int]
    cycles: int  # stripes per torso height, or dots per torso width
    sleeve: float  # sleeve length as a fraction of the whole arm; < 0.85 so the hand shows
    length: float  # hem below the hips, in body heights

    def texture(self, u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
        """Per-pixel RGB for garment coordinates; ``aspect`` = torso height / width keeps dots round."""
        out = np.empty(u.shape + (3,), np.uint8)
        out[:] = self.base
        if self.pattern == "stripes":
            on = np.floor(v * self.cycles).astype(np.int64) % 2 == 1
        elif self.pattern == "dots":
            du = (u * self.cycles) % 1.0 - 0.5
            dv = (v * aspect * self.cycles) % 1.0 - 0.5
            on = du * du + dv * dv < 0.3 * 0.3
        else:
            return out
        out[on] = self.accent
        return out

    def card(self) -> dict:
        return {"base_rgb": list(self.base), "pattern": self.pattern, "accent_rgb": list(self.accent),
                "cycles": self.cycles, "sleeve": round(self.sleeve, 4), "length": round(self.length, 4)}


@dataclass
class Body:
    """One sampled person: skeleton in pixels plus the shape and colour parameters."""

    hb: float  # body height in pixels
    joints: np.ndarray  # (25, 2) float64, BODY_25 positions (x, y)
    head: tuple[float, float]  # head centre
    shoulder_half: float  # torso half width at the shoulders (garment edge)
    hip_half: float
    top_y: float  # garment top (shoulder line)
    hem_y: float
    arm_w: int
    leg_w: int
    pants_len: float  # fraction of the leg (hip to ankle) covered by the trousers
    long_hair: bool
    garment: Garment
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _rgb(rng: np.random.Generator, palette: tuple[tuple[int, int, int], ...], jitter: int) -> tuple[int, int, int]:
    base = np.array(palette[rng.integers(len(palette))], np.int64)
    return tuple(int(c) for c in np.clip(base + rng.integers(-jitter, jitter + 1, 3), 0, 255))


def _vivid(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour: far from the white cloth background and the agnostic gray."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.45, 0.95))
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _sample_garment(rng: np.random.Generator) -> Garment:
    base = _vivid(rng)
    pattern = ("solid", "stripes", "dots")[rng.integers(3)]
    accent_kind = rng.integers(3)
    if accent_kind == 0:
        accent = (245, 245, 245)
    elif accent_kind == 1:
        accent = (25, 25, 25)
    else:
        accent = tuple(255 - c for c in base)
    cycles = int(rng.integers(3, 8)) if pattern == "stripes" else int(rng.integers(3, 6))
    return Garment(base=base, pattern=pattern, accent=accent, cycles=cycles,
                   sleeve=float(rng.uniform(0.15, 0.85)), length=float(rng.uniform(-0.02, 0.08)))


def _arm(shoulder: np.ndarray, out: float, a: float, b: float, l1: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist from the shoulder; angles from the downward vertical, ``out`` = +-1 in x."""
    elbow = shoulder + l1 * np.array([out * np.sin(a), np.cos(a)])
    wrist = elbow + l2 * np.array([out * np.sin(a + b), np.cos(a + b)])
    return elbow, wrist


def _place_arms(j: np.ndarray, hb: float, rng: np.random.Generator) -> None:
    """Elbows and wrists from the shoulders, with freshly drawn arm angles (in place)."""
    for sho, elb, wri, out in ((R_SHO, R_ELB, R_WRI, -1.0), (L_SHO, L_ELB, L_WRI, 1.0)):
        a = np.deg2rad(rng.uniform(8, 60))
        b = np.deg2rad(rng.uniform(-25, 45))
        j[elb], j[wri] = _arm(j[sho], out, a, b, 0.16 * hb, 0.15 * hb)


def _place_legs(j: np.ndarray, hb: float, y0: float, rng: np.random.Generator) -> None:
    """Knees, ankles and feet from the hips, with a freshly drawn leg spread (in place)."""
    for hip, knee, ank, out in ((R_HIP, R_KNEE, R_ANK, -1.0), (L_HIP, L_KNEE, L_ANK, 1.0)):
        spread = rng.uniform(0.0, 0.05) * hb
        j[knee] = (j[hip][0] + out * spread * 0.5, y0 + 0.715 * hb)
        j[ank] = (j[hip][0] + out * spread, y0 + 0.925 * hb)
    for ank, big, small, heel, out in ((L_ANK, L_BIG_TOE, L_SMALL_TOE, L_HEEL, 1.0),
                                       (R_ANK, R_BIG_TOE, R_SMALL_TOE, R_HEEL, -1.0)):
        ax, ay = j[ank]
        j[big] = (ax - out * 0.012 * hb, ay + 0.04 * hb)
        j[small] = (ax + out * 0.02 * hb, ay + 0.038 * hb)
        j[heel] = (ax, ay + 0.022 * hb)


def sample_body(rng: np.random.Generator, size: tuple[int, int]) -> Body:
    """Sample a frontal person whose whole body fits the frame (arms may leave it)."""
    h, w = size
    hb = h * rng.uniform(0.80, 0.95)
    y0 = rng.uniform(0.01 * h, max(0.011 * h, h - 0.985 * hb))
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    j = np.zeros((25, 2))
    head = (cx, y0 + 0.075 * hb)
    sho_y = y0 + 0.19 * hb
    sw = rng.uniform(0.09, 0.11) * hb
    hw = rng.uniform(0.055, 0.07) * hb
    j[NECK_J] = (cx, y0 + 0.175 * hb)
    j[R_SHO], j[L_SHO] = (cx - sw, sho_y), (cx + sw, sho_y)
    j[NOSE] = (cx, head[1] + 0.012 * hb)
    j[R_EYE], j[L_EYE] = (cx - 0.022 * hb, head[1] - 0.01 * hb), (cx + 0.022 * hb, head[1] - 0.01 * hb)
    j[R_EAR], j[L_EAR] = (cx - 0.05 * hb, head[1]), (cx + 0.05 * hb, head[1])
    _place_arms(j, hb, rng)
    hip_y = y0 + 0.5 * hb
    j[MID_HIP] = (cx, hip_y)
    j[R_HIP], j[L_HIP] = (cx - 0.055 * hb, hip_y), (cx + 0.055 * hb, hip_y)
    _place_legs(j, hb, y0, rng)
    garment = _sample_garment(rng)
    colours = {
        "background": tuple(int(c) for c in np.clip(rng.integers(218, 250) + rng.integers(-4, 5, 3), 0, 255)),
        "skin": _rgb(rng, _SKIN, 8),
        "hair": _rgb(rng, _HAIR, 10),
        "pants": _rgb(rng, _PANTS, 10),
        "shoes": _rgb(rng, _SHOES, 10),
    }
    return Body(
        hb=hb, joints=j, head=head, shoulder_half=sw + 0.02 * hb, hip_half=hw,
        top_y=sho_y - 0.02 * hb, hem_y=hip_y + garment.length * hb,
        arm_w=max(2, int(round(0.04 * hb))), leg_w=max(2, int(round(0.055 * hb))),
        pants_len=float(rng.uniform(0.55, 1.0)), long_hair=bool(rng.integers(2)),
        garment=garment, colours=colours,
    )


def repose(body: Body, size: tuple[int, int], rng: np.random.Generator, shift: float = 0.05) -> Body:
    """The same person (build, garment, colours, hair, trouser length) in another pose.

    Only pose parameters are drawn again, from the ranges ``sample_body`` uses: both arm angles,
    the leg spread, and the position (moved by up to ``shift`` of the frame in x and y, kept where
    ``sample_body`` may place a body). Everything that defines who the person is stays, so the
    garment laid flat (``render_cloth``) is the same for every pose. For multi-pose datasets (MPV).
    """
    h, w = size
    hb = body.hb
    y0 = body.head[1] - 0.075 * hb
    dx = rng.uniform(-shift, shift) * w
    lo, hi = 0.01 * h, max(0.011 * h, h - 0.985 * hb)
    dy = float(np.clip(y0 + rng.uniform(-shift, shift) * h, lo, hi)) - y0
    j = body.joints + np.array([dx, dy])
    _place_arms(j, hb, rng)
    _place_legs(j, hb, y0 + dy, rng)
    return dataclasses.replace(body, joints=j, head=(body.head[0] + dx, body.head[1] + dy),
                               top_y=body.top_y + dy, hem_y=body.hem_y + dy)


def _pt(p: np.ndarray | tuple[float, float]) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _along(points: list[np.ndarray], frac: float) -> list[np.ndarray]:
    """The polyline from its start to ``frac`` of its total length (sleeves, trouser legs)."""
    seg = [float(np.linalg.norm(b - a)) for a, b in zip(points[:-1], points[1:])]
    left = frac * sum(seg)
    out = [points[0]]
    for (a, b), length in zip(zip(points[:-1], points[1:]), seg):
        if left >= length:
            out.append(b)
            left -= length
        else:
            out.append(a + (b - a) * (left / max(length, 1e-9)))
            break
    return out


def _polyline(img: np.ndarray, points: list[np.ndarray], value: int, width: int) -> None:
    for a, b in zip(points[:-1], points[1:]):
        cv2.line(img, _pt(a), _pt(b), value, width)


def _torso_polygon(body: Body, cx: float) -> np.ndarray:
    """Garment outline (shoulders, neckline, armpits, hem) in pixels."""
    hb, sw, top, hem = body.hb, body.shoulder_half, body.top_y, body.hem_y
    hem_half = body.hip_half + 0.015 * hb
    return np.array([
        (cx - sw, top), (cx - 0.035 * hb, top - 0.005 * hb), (cx, top + 0.03 * hb),
        (cx + 0.035 * hb, top - 0.005 * hb), (cx + sw, top),
        (cx + sw - 0.01 * hb, top + 0.13 * hb), (cx + hem_half, hem),
        (cx - hem_half, hem), (cx - sw + 0.01 * hb, top + 0.13 * hb),
    ])


def draw_parse(body: Body, size: tuple[int, int]) -> np.ndarray:
    """LIP label map of the person, painted back to front."""
    h, w = size
    j, hb = body.joints, body.hb
    parse = np.zeros((h, w), np.uint8)
    hx, hy = body.head
    if body.long_hair:
        cv2.rectangle(parse, _pt((hx - 0.068 * hb, hy)), _pt((hx + 0.068 * hb, hy + 0.17 * hb)), HAIR, -1)
    for hip, knee, ank, label in ((R_HIP, R_KNEE, R_ANK, R_LEG), (L_HIP, L_KNEE, L_ANK, L_LEG)):
        _polyline(parse, [j[hip], j[knee], j[ank]], label, body.leg_w)
    cx = float(j[MID_HIP][0])
    hip_y, hh = float(j[MID_HIP][1]), body.hip_half
    waist = np.array([(cx - hh, hip_y - 0.03 * hb), (cx + hh, hip_y - 0.03 * hb), (cx + hh, hip_y + 0.03 * hb),
                      (cx, hip_y + 0.06 * hb), (cx - hh, hip_y + 0.03 * hb)])
    cv2.fillPoly(parse, [np.round(waist).astype(np.int32)], PANTS)
    for hip, knee, ank in ((R_HIP, R_KNEE, R_ANK), (L_HIP, L_KNEE, L_ANK)):
        _polyline(parse, _along([j[hip], j[knee], j[ank]], body.pants_len), PANTS, body.leg_w + max(1, int(0.012 * hb)))
    for ank, label, out in ((R_ANK, R_SHOE, -1.0), (L_ANK, L_SHOE, 1.0)):  # shoes over trouser hems
        centre = (j[ank][0] + out * 0.006 * hb, j[ank][1] + 0.03 * hb)
        cv2.ellipse(parse, _pt(centre), _pt((0.04 * hb, 0.022 * hb)), 0, 0, 360, label, -1)
    cv2.line(parse, _pt((hx, hy + 0.04 * hb)), _pt(j[NECK_J]), NECK, max(2, int(round(0.05 * hb))))
    cv2.fillPoly(parse, [np.round(_torso_polygon(body, cx)).astype(np.int32)], UPPER)
    cv2.ellipse(parse, _pt((hx, hy - 0.012 * hb)), _pt((0.068 * hb, 0.074 * hb)), 0, 0, 360, HAIR, -1)
    cv2.ellipse(parse, _pt((hx, hy + 0.01 * hb)), _pt((0.052 * hb, 0.064 * hb)), 0, 0, 360, FACE, -1)
    sleeve_w = body.arm_w + max(1, int(round(0.012 * hb)))
    for sho, elb, wri, label in ((R_SHO, R_ELB, R_WRI, R_ARM), (L_SHO, L_ELB, L_WRI, L_ARM)):
        arm = [j[sho], j[elb], j[wri]]
        _polyline(parse, arm, label, body.arm_w)
        cv2.circle(parse, _pt(j[wri]), max(1, int(round(0.025 * hb))), label, -1)
        _polyline(parse, _along(arm, body.garment.sleeve), UPPER, sleeve_w)
    return parse


def _garment_uv(
    xs: np.ndarray, ys: np.ndarray, left: float, top: float, width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel -> garment coordinates: (0, 0) top-left of the torso, (1, 1) its bottom-right."""
    return (xs - left) / width, (ys - top) / height


def render_person(body: Body, parse: np.ndarray) -> np.ndarray:
    """RGB person painted from the label map: flat colours per part, the garment's texture on 5."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = body.colours["background"]
    for label in (NECK, FACE, L_ARM, R_ARM, L_LEG, R_LEG):
        lut[label] = body.colours["skin"]
    lut[HAIR] = body.colours["hair"]
    lut[PANTS] = body.colours["pants"]
    lut[L_SHOE] = lut[R_SHOE] = body.colours["shoes"]
    img = lut[parse]
    ys, xs = np.nonzero(parse == UPPER)
    cx = float(body.joints[MID_HIP][0])
    width, height = 2 * body.shoulder_half, body.hem_y - body.top_y
    u, v = _garment_uv(xs.astype(np.float64), ys.astype(np.float64), cx - body.shoulder_half, body.top_y, width, height)
    img[ys, xs] = body.garment.texture(u, v, height / width)
    eye_r = int(round(0.006 * body.hb))  # 0 draws a single pixel at small sizes
    for eye in (R_EYE, L_EYE):
        x, y = _pt(body.joints[eye])
        if 0 <= y < parse.shape[0] and 0 <= x < parse.shape[1] and parse[y, x] == FACE:
            cv2.circle(img, (x, y), eye_r, (40, 30, 30), -1)
    return img


def render_cloth(body: Body, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The same garment laid flat on white, scaled to fill the frame; returns (RGB, 0/1 mask)."""
    h, w = size
    hb = body.hb
    width, height = 2 * body.shoulder_half, body.hem_y - body.top_y
    arm_len = 0.31 * hb * body.garment.sleeve
    angle = np.deg2rad(40)
    span_x = width + 2 * arm_len * np.sin(angle) + 2 * body.arm_w
    span_y = height + 0.05 * hb
    k = min(0.9 * w / span_x, 0.85 * h / span_y)
    # Build the outline in person units around (0, top_y), then map into the cloth frame.
    poly = _torso_polygon(body, 0.0)
    poly[:, 1] -= body.top_y
    origin = np.array([w / 2, (h - k * height) / 2])
    poly = poly * k + origin
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    sleeve_w = max(2, int(round(k * (body.arm_w + 0.012 * hb))))
    for out in (-1.0, 1.0):
        start = origin + k * np.array([out * (body.shoulder_half - 0.02 * hb), 0.02 * hb])
        end = start + k * arm_len * np.array([out * np.sin(angle), np.cos(angle)])
        cv2.line(mask, _pt(start), _pt(end), 1, sleeve_w)
    img = np.full((h, w, 3), 255, np.uint8)
    ys, xs = np.nonzero(mask)
    u, v = _garment_uv(xs.astype(np.float64), ys.astype(np.float64),
                       origin[0] - k * body.shoulder_half, origin[1], k * width, k * height)
    img[ys, xs] = body.garment.texture(u, v, height / width)
    return img, mask


def keypoints25(body: Body, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """BODY_25 (x, y, c); joints off the frame, or ears hidden by hair, are (0, 0, 0) as in OpenPose."""
    h, w = size
    kp = np.zeros((25, 3))
    conf = rng.uniform(0.55, 0.95, 25)
    hidden = np.zeros(25, bool)
    hidden[[R_EAR, L_EAR]] = rng.uniform(size=2) < 0.25
    for i, (x, y) in enumerate(body.joints):
        if 0 <= x <= w - 1 and 0 <= y <= h - 1 and not hidden[i]:
            kp[i] = (round(x, 3), round(y, 3), round(float(conf[i]), 4))
    return kp


def render_pose(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenPose-style skeleton image on black (RGB)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    thick = max(1, int(round(min(h, w) / 96)))
    for n, (a, b) in enumerate(_LIMBS):
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            hue = n / len(_LIMBS)
            colour = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 1.0, 0.8))
            cv2.line(img, _pt(kp[a]), _pt(kp[b]), colour, thick)
    for x, y, c in kp:
        if c > 0:
            cv2.circle(img, _pt((x, y)), thick, (255, 255, 255), -1)
    return img


def agnostic(person: np.ndarray, parse: np.ndarray, hb: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VITON-HD-style cloth-agnostic person, parse and mask (an approximation of v3.2).

    Like VITON-HD's ``get_img_agnostic`` the gray region covers upper clothes, neck and arms with
    a margin (so the garment's outline is not leaked), and head (4, 13) and lower-body labels
    (9, 12, 16-19) are pasted back; the margin is a dilation here instead of pose-drawn strokes.
    """
    upper = np.isin(parse, (5, 6, 7, NECK, L_ARM, R_ARM)).astype(np.uint8)
    r = max(1, int(round(0.02 * hb)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    region = cv2.dilate(upper, kernel).astype(bool) & ~np.isin(parse, (4, 13, 9, 12, 16, 17, 18, 19))
    img = person.copy()
    img[region] = AGNOSTIC_GRAY
    parse_agn = parse.copy()
    parse_agn[region & np.isin(parse, (5, 6, 7, NECK, L_ARM, R_ARM))] = 0
    return img, parse_agn, region.astype(np.uint8) * 255


def jpeg_bytes(rgb_or_gray: np.ndarray) -> bytes:
    """Quality 95 with full-resolution chroma (4:4:4): at 64x48 a 4:2:0 JPEG smears thin stripes
    into their neighbours' colour, which would blur the very signal the fixture exists to carry."""
    arr = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                         cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    assert ok, "OpenCV could not encode a JPEG"
    return buf.tobytes()


def png_bytes(rgb_or_gray: np.ndarray) -> bytes:
    arr = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray
    ok, buf = cv2.imencode(".png", arr)
    assert ok, "OpenCV could not encode a PNG"
    return buf.tobytes()


def palette_png(labels: np.ndarray) -> bytes:
    """Palette ("P" mode) PNG whose pixel values are the LIP labels, as in VITON-HD's parse maps."""
    h, w = labels.shape
    im = Image.frombytes("P", (w, h), np.ascontiguousarray(labels, np.uint8).tobytes())
    im.putpalette([c for rgb in LIP_PALETTE for c in rgb] + [0, 0, 0] * (256 - len(LIP_PALETTE)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def openpose_json(kp: np.ndarray) -> bytes:
    doc = {
        "version": 1.3,
        "people": [{
            "person_id": [-1],
            "pose_keypoints_2d": [float(v) for v in kp.reshape(-1)],
            "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
            "pose_keypoints_3d": [], "face_keypoints_3d": [],
            "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": [],
        }],
    }
    return json.dumps(doc).encode()


def coco18_json(kp25: np.ndarray) -> bytes:
    """BODY_25 keypoints as an old-OpenPose COCO-18 file (``pose_keypoints``), as VITON/CP-VTON and
    MPV ship their poses; converted by joint name (``convert_pose``), rounded to 4 decimals."""
    # Imported here: the vton_models package imports torch, which the VITON-HD writer does not need.
    from vton_models.representation.pose import convert_pose

    coco = convert_pose(kp25, "body25", "coco18")
    doc = {"version": 1.0, "people": [{
        "face_keypoints": [], "pose_keypoints": [round(float(v), 4) for v in coco.reshape(-1)],
        "hand_right_keypoints": [], "hand_left_keypoints": [],
    }]}
    return json.dumps(doc).encode()


def split_counts(n: int, test_fraction: float) -> tuple[int, int]:
    n_test = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(1, n_test), n - 1)
    n_test = min(n_test, n - 1)
    return n - n_test, n_test


def _unpaired(names: list[str], seed: int) -> list[str]:
    """A derangement of ``names`` (no one gets their own cloth) when there are at least two."""
    if len(names) < 2:
        return list(names)
    order = np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 1])).permutation(len(names))
    cloth = [""] * len(names)
    for a, b in zip(order, np.roll(order, -1)):
        cloth[a] = names[b]
    return cloth


def prepare_output(out: Path, folders: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Create ``out``; replace an earlier synthetic dataset there (its ``folders``, ``files`` and
    marker), never anything else: a non-empty ``out`` without a marker is an error."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise FileExistsError(
                f"{out}: directory is not empty and holds no {MARKER}; refusing to write a "
                "synthetic dataset over other files"
            )
        for folder in folders:
            shutil.rmtree(out / folder, ignore_errors=True)
        for name in (*files, MARKER):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def checked_arguments(n: int, size: tuple[int, int], max_n: int, ids: str) -> tuple[int, int]:
    """(H, W) of a synthetic writer's arguments, or a ValueError naming the bad one (``ids`` says
    why ``n`` is capped, e.g. "5-digit VITON-HD ids")."""
    h, w = int(size[0]), int(size[1])
    if n < 1:
        raise ValueError(f"synthesize: n must be >= 1, got {n}")
    if h < MIN_SIZE[0] or w < MIN_SIZE[1]:
        raise ValueError(f"synthesize: size (H, W) must be at least {MIN_SIZE}, got {(h, w)}")
    if n > max_n:
        raise ValueError(f"synthesize: n must be <= {max_n} ({ids}), got {n}")
    return h, w


def write_marker(out: Path, generator: str, layout: str, **card: object) -> None:
    """``synthetic.json``: the data card (generator, layout, arguments, per-sample garments); its
    presence is also what lets a later run replace this folder."""
    marker = {"generator": f"vton-train {generator}", "layout": layout, **card}
    (out / MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def _prepare(out: Path) -> None:
    prepare_output(out, ("train", "test"), ("train_pairs.txt", "test_pairs.txt"))


@dataclass
class DrawnSample:
    """One synthetic person and garment: the skeleton, the LIP parse drawn from it, the photo
    painted from the parse, the in-shop garment and its mask, and BODY_25 keypoints."""

    body: Body
    parse: np.ndarray
    person: np.ndarray
    cloth: np.ndarray
    cloth_mask: np.ndarray
    keypoints: np.ndarray


def draw_sample(rng: np.random.Generator, size: tuple[int, int]) -> DrawnSample:
    """Draw one sample (the random draws, in this order, are what make datasets reproducible)."""
    body = sample_body(rng, size)
    parse = draw_parse(body, size)
    person = render_person(body, parse)
    cloth, cloth_mask = render_cloth(body, size)
    return DrawnSample(body, parse, person, cloth, cloth_mask, keypoints25(body, size, rng))


def write_sample(root: Path, name: str, size: tuple[int, int], rng: np.random.Generator) -> dict:
    """Draw one sample and write all its modalities under ``root`` (one split folder)."""
    drawn = draw_sample(rng, size)
    body, parse, person, cloth, cloth_mask, kp = (drawn.body, drawn.parse, drawn.person, drawn.cloth,
                                                  drawn.cloth_mask, drawn.keypoints)
    agn, parse_agn, agn_mask = agnostic(person, parse, body.hb)
    files = {
        f"image/{name}.jpg": jpeg_bytes(person),
        f"cloth/{name}.jpg": jpeg_bytes(cloth),
        f"cloth-mask/{name}.jpg": jpeg_bytes(cloth_mask * 255),
        f"image-parse-v3/{name}.png": palette_png(parse),
        f"image-parse-agnostic-v3.2/{name}.png": palette_png(parse_agn),
        f"agnostic-v3.2/{name}.jpg": jpeg_bytes(agn),
        f"agnostic-mask/{name}_mask.png": png_bytes(agn_mask),
        f"openpose_json/{name}_keypoints.json": openpose_json(kp),
        f"openpose_img/{name}_rendered.png": png_bytes(render_pose(kp, size)),
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return {"id": name, "garment": body.garment.card(), "bytes": sum(len(d) for d in files.values())}


def synthesize(
    out: Path,
    n: int = 64,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    split_test_fraction: float = 0.25,
) -> dict:
    """Write ``n`` synthetic samples of ``size`` (H, W) in the VITON-HD layout under ``out``.

    The first ``n - n_test`` ids go to ``train`` and the rest to ``test`` (ids are unique across
    splits, as in the release). Returns a report: root, counts per split, pairs files, bytes.
    """
    out = Path(out)
    h, w = checked_arguments(n, size, 99999, "5-digit VITON-HD ids")
    if not 0.0 <= split_test_fraction < 1.0:
        raise ValueError(f"synthesize: split_test_fraction must be in [0, 1), got {split_test_fraction}")
    _prepare(out)
    n_train, n_test = split_counts(n, split_test_fraction)
    splits = {"train": [f"{i:05d}_00" for i in range(n_train)],
              "test": [f"{i:05d}_00" for i in range(n_train, n)]}
    cards, total = [], 0
    for split, names in splits.items():
        for d in MODALITY_DIRS:
            (out / split / d).mkdir(parents=True, exist_ok=True)
        for name in names:
            rng = np.random.default_rng(np.random.SeedSequence([seed, int(name[:5])]))
            card = write_sample(out / split, name, (h, w), rng)
            total += card.pop("bytes")
            cards.append({**card, "split": split})
    pairs = {
        "train_pairs.txt": [(p, p) for p in splits["train"]],
        "test_pairs.txt": list(zip(splits["test"], _unpaired(splits["test"], seed))),
    }
    for fname, rows in pairs.items():
        (out / fname).write_text("".join(f"{p}.jpg {c}.jpg\n" for p, c in rows))
    write_marker(out, "shards.synthetic", "viton_hd", n=n, size=[h, w], seed=seed,
                 split_test_fraction=split_test_fraction, samples=cards)
    return {
        "root": str(out),
        "layout": "viton_hd",
        "size": [h, w],
        "seed": seed,
        "counts": {"train": n_train, "test": n_test},
        "pairs_files": {name: str(out / name) for name in pairs},
        "files": n * len(MODALITY_DIRS) + len(pairs) + 1,
        "bytes": total,
    }


#: Layouts ``vton shard synth --layout`` writes; each module's ``synthesize(out, n, size, seed)``
#: writes that layout's folders, lists and ``synthetic.json`` and returns the same kind of report.
SYNTHETIC_LAYOUTS: dict[str, str] = {
    "viton_hd": "shards.synthetic",
    "viton": "shards.synthetic_viton",
    "mpv": "shards.synthetic_mpv",
    "dresscode": "shards.synthetic_dresscode",
}


def synthesize_layout(layout: str, out: Path, n: int = 64, size: tuple[int, int] = (64, 48), seed: int = 0) -> dict:
    """A synthetic dataset in ``layout``'s on-disk form (see ``SYNTHETIC_LAYOUTS``); ``mpv`` writes
    triplets (the same person, garment and colours in two poses), readable as ``mpv`` and
    ``mpv_triplets``."""
    import importlib

    if layout not in SYNTHETIC_LAYOUTS:
        raise ValueError(f"synthesize: no synthetic writer for layout {layout!r}; allowed: {sorted(SYNTHETIC_LAYOUTS)}")
    module = importlib.import_module(SYNTHETIC_LAYOUTS[layout])
    return module.synthesize(out, n=n, size=size, seed=seed)
