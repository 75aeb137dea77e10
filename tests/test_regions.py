"""Face/hair boxes and the differentiable crop and paste-back (vton_models.representation.regions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vton_models.representation.pose import COCO18_NAMES
from vton_models.representation.regions import FIXED_HEAD_BOX, box_mask, crop_boxes, face_box, paste_boxes


def test_face_box_is_a_scaled_square_around_hair_and_face():
    parse = np.zeros((100, 80), np.uint8)
    parse[10:30, 30:40] = 2  # hair: rows 10-29, cols 30-39
    parse[30:40, 32:38] = 13  # face below it: the region spans rows 10-39 (30 px), cols 30-39 (10 px)
    box = face_box(parse)
    side = 1.2 * 30
    np.testing.assert_allclose(box, [35 - side / 2, 25 - side / 2, 35 + side / 2, 25 + side / 2], atol=1e-5)


def test_face_box_stays_inside_the_image_by_shifting():
    parse = np.zeros((100, 80), np.uint8)
    parse[0:20, 0:20] = 13
    x0, y0, x1, y1 = face_box(parse)
    assert (x0, y0) == (0.0, 0.0) and x1 == pytest.approx(24.0) and y1 == pytest.approx(24.0)


def test_face_box_falls_back_to_head_keypoints_then_to_a_fixed_box():
    parse = np.zeros((100, 80), np.uint8)
    pose = np.zeros((18, 3), np.float32)
    for name, (x, y) in {"nose": (40, 20), "r_eye": (37, 17), "l_eye": (43, 17), "r_ear": (33, 19)}.items():
        pose[COCO18_NAMES.index(name)] = (x, y, 1.0)
    pose[COCO18_NAMES.index("r_hip")] = (10, 90, 1.0)  # not a head point: must not widen the box
    box = face_box(parse, pose, "coco18")
    centre = np.array([(40 + 37 + 43 + 33) / 4, (20 + 17 + 17 + 19) / 4]) + 0.5
    side = max(1.2 * 2 * 10, 100 / 5)
    np.testing.assert_allclose(box, [*(centre - side / 2), *(centre + side / 2)], atol=1e-4)
    fixed = face_box(parse, np.zeros((18, 3), np.float32), "coco18")
    cx, cy, s = FIXED_HEAD_BOX
    np.testing.assert_allclose(fixed, [cx * 80 - s * 50, cy * 100 - s * 50, cx * 80 + s * 50, cy * 100 + s * 50],
                               atol=1e-4)


def test_crop_of_a_pixel_aligned_box_is_exact_and_paste_back_is_its_inverse():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 40, 32, dtype=torch.float64)
    boxes = torch.tensor([[4.0, 6.0, 20.0, 22.0], [10.0, 0.0, 26.0, 16.0]], dtype=torch.float64)
    crops = crop_boxes(images, boxes, (16, 16))
    torch.testing.assert_close(crops[0], images[0, :, 6:22, 4:20])
    torch.testing.assert_close(crops[1], images[1, :, 0:16, 10:26])
    torch.testing.assert_close(paste_boxes(images, crops, boxes, feather=0.0), images)
    other = paste_boxes(torch.zeros_like(images), crops, boxes, feather=0.0)
    torch.testing.assert_close(other[0, :, 6:22, 4:20], images[0, :, 6:22, 4:20])
    assert other[0, :, :6].abs().sum() == 0 and other[0, :, :, 20:].abs().sum() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_crop_samples_what_torchvisions_roi_align_samples(dtype):
    """The same values as ``roi_align(aligned=True, sampling_ratio=1)`` (its eager Python kernel,
    not the per-process torch.compile crop_boxes avoids), for boxes inside, across and beyond the
    image's edges, up- and downsampled."""
    from torchvision.ops.roi_align import _roi_align

    torch.manual_seed(1)
    images = torch.rand(4, 3, 40, 32, dtype=dtype)
    boxes = torch.tensor([[3.3, 5.7, 21.9, 30.2], [-4.0, -6.5, 12.0, 9.0], [20.0, 30.0, 36.5, 45.0],
                          [0.0, 0.0, 32.0, 40.0]], dtype=dtype)
    rois = torch.cat([torch.arange(4, dtype=dtype)[:, None], boxes], 1)
    for size in ((16, 16), (64, 48)):
        expected = _roi_align.__wrapped__(images, rois, 1.0, size[0], size[1], 1, True)  # eager
        torch.testing.assert_close(crop_boxes(images, boxes, size), expected)


def test_crop_and_paste_are_differentiable_and_local():
    images = torch.rand(1, 3, 40, 32, requires_grad=True)
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0]])
    crops = crop_boxes(images, boxes, (64, 64))  # upsampled: a refinement net's working size
    assert crops.shape == (1, 3, 64, 64)
    refined = (crops * 2.0).detach().requires_grad_(True)
    out = paste_boxes(images, refined, boxes, feather=2.0)
    out.sum().backward()
    grad_img = images.grad[0, 0]
    assert grad_img[0, 0] == 1.0, "outside the box the image passes through"
    assert grad_img[16, 16] == 0.0, "deep inside the box the pasted crop replaces the image"
    assert 0.0 < grad_img[8, 16] < 1.0, "the feathered border blends both"
    assert refined.grad.abs().sum() > 0
    images.grad = None
    crops.mean().backward()  # the crop itself carries gradient to the pixels of its box only
    assert images.grad[0, :, 8:24, 8:24].abs().sum() > 0
    assert images.grad[0, :, :7].abs().sum() == 0 and images.grad[0, :, :, 25:].abs().sum() == 0


def test_box_mask_and_bad_boxes():
    mask = box_mask(torch.tensor([[2.0, 1.0, 6.0, 3.0]]), (4, 8))
    expected = torch.zeros(4, 8)
    expected[1:3, 2:6] = 1
    torch.testing.assert_close(mask[0, 0], expected)
    with pytest.raises(ValueError, match="x1 > x0"):
        crop_boxes(torch.zeros(1, 3, 8, 8), torch.tensor([[4.0, 0.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match=r"\(B, 4\) for 2 images"):
        crop_boxes(torch.zeros(2, 3, 8, 8), torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
