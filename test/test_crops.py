import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m5l_core.crops import (
    boxes_to_rois,
    context_region,
    crop_region,
    crop_scale,
    crop_sides,
    crop_to_image,
    image_to_crop,
)


def gradient_image(width=40, height=30):
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([xs * 5 % 256, ys * 7 % 256, (xs + ys) % 256], axis=2).astype(np.uint8)


def test_whole_image_region_at_native_size_is_identity():
    image = gradient_image()
    out = crop_region(image, (0, 0, 40, 30), (40, 30))
    assert out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out, image)


def test_integer_subregion_is_a_plain_slice():
    image = gradient_image()
    out = crop_region(image, (5, 7, 20, 10), (20, 10))
    np.testing.assert_array_equal(out, image[7:17, 5:25])


def test_downscaling_by_two_samples_between_pixels():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :, 0] = np.array([0, 100, 200, 250], np.uint8)[None, :]
    out = crop_region(image, (0, 0, 4, 4), (2, 2))
    # Output pixel 0 covers image [0, 2): its centre 1.0 lies between pixels 0 and 1.
    assert out[0, 0, 0] == 50
    assert out[0, 1, 0] == 225


def test_outside_pixels_get_the_mean_or_the_edge():
    image = np.full((10, 10, 3), 200, np.uint8)
    image[:5] = 0
    mean_fill = crop_region(image, (-20, -20, 10, 10), (10, 10), border="mean")
    assert np.all(mean_fill == 100)
    edge_fill = crop_region(image, (-20, -20, 10, 10), (10, 10), border="replicate")
    assert np.all(edge_fill == 0)


def test_context_region_puts_the_box_at_target_size_in_the_centre():
    box = np.array([50.0, 20.0, 40.0, 10.0])
    region = context_region(box, (90, 90), 30)
    in_crop = image_to_crop(box, region, (90, 90))[0]
    np.testing.assert_allclose(in_crop, [30, 30, 30, 30])
    np.testing.assert_allclose(crop_scale(region, (90, 90)), [0.75, 3.0])


def test_crop_sides_stretch_a_thin_target_fully_halfway_or_not_at_all():
    thin = np.array([10.0, 90.0])
    np.testing.assert_allclose(crop_sides(thin, 1.0), thin)                 # each axis to target size
    np.testing.assert_allclose(crop_sides(thin, 0.0), [30.0, 30.0])         # one scale: aspect kept
    np.testing.assert_allclose(crop_sides(thin, 0.5), [np.sqrt(300), np.sqrt(2700)])
    np.testing.assert_allclose(crop_sides([40.0, 40.0], 0.3), [40.0, 40.0])  # squares never change


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-500, 500), min_size=2, max_size=2),
       st.lists(st.floats(1, 400), min_size=2, max_size=2), st.integers(8, 300), st.integers(8, 300))
def test_image_to_crop_and_back_round_trip(origin, size, out_w, out_h):
    region = np.array([*origin, *size])
    boxes = np.array([[10.0, 20.0, 30.0, 40.0], [-5.0, 3.0, 1.0, 2.0]])
    there = image_to_crop(boxes, region, (out_w, out_h))
    np.testing.assert_allclose(crop_to_image(there, region, (out_w, out_h)), boxes, rtol=1e-9, atol=1e-7)


def test_rois_grow_boxes_about_their_centre_and_carry_the_batch_index():
    rois = boxes_to_rois([[10, 10, 20, 40]], (0, 0, 100, 100), (50, 50), batch_index=3, context=1.5)
    assert rois.dtype == np.float32 and rois.shape == (1, 5)
    # In crop pixels the box is (5, 5, 10, 20); grown 1.5x about its centre (10, 15).
    np.testing.assert_allclose(rois[0], [3, 2.5, 0, 17.5, 30])


def test_crops_reject_bad_inputs():
    with pytest.raises(ValueError, match="region"):
        crop_region(gradient_image(), (0, 0, 0, 10), (10, 10))
    with pytest.raises(ValueError, match="HxWx3"):
        crop_region(np.zeros((10, 10), np.uint8), (0, 0, 5, 5), (10, 10))
    with pytest.raises(ValueError, match="border"):
        crop_region(gradient_image(), (0, 0, 5, 5), (10, 10), border="wrap")
    with pytest.raises(ValueError, match="boxes"):
        boxes_to_rois(np.zeros((2, 3)), (0, 0, 5, 5), (10, 10))
    with pytest.raises(ValueError, match="positive size"):
        context_region([0, 0, 0, 5], (10, 10), 5)
