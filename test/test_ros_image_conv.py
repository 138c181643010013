"""sensor_msgs/Image -> numpy: accepted encodings, channel order, and malformed images."""

from types import SimpleNamespace

import numpy as np
import pytest

from m5l_tracker_ros.image_conv import ImageError, decode, to_rgb, to_thermal


def image_msg(array, encoding, step=None, bigendian=False, data=None):
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    if bigendian:
        array = array.astype(array.dtype.newbyteorder(">"))
    row = array.reshape(height, -1).view(np.uint8)
    step = row.shape[1] if step is None else step
    padded = np.zeros((height, step), np.uint8)
    padded[:, : min(step, row.shape[1])] = row[:, :step]
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
                           step=step, data=padded.tobytes() if data is None else data)


@pytest.fixture
def colour():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def test_rgb8_is_returned_as_is(colour):
    assert np.array_equal(to_rgb(image_msg(colour, "rgb8")), colour)


@pytest.mark.parametrize("encoding", ["bgr8", "8UC3"])
def test_bgr_orders_are_converted_to_rgb(colour, encoding):
    assert np.array_equal(to_rgb(image_msg(colour[:, :, ::-1], encoding)), colour)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_grey_rgb_stream_is_replicated_to_three_channels(colour, encoding):
    grey = colour[:, :, 0]
    out = to_rgb(image_msg(grey, encoding))
    assert out.shape == (6, 5, 3) and all(np.array_equal(out[:, :, c], grey) for c in range(3))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_thermal_keeps_its_values_in_either_byte_order(encoding, bigendian):
    values = np.arange(30, dtype=np.uint16).reshape(6, 5) * 2000 + 7
    out = to_thermal(image_msg(values, encoding, bigendian=bigendian))
    assert out.dtype == np.uint16 and np.array_equal(out, values)


def test_row_padding_in_step_is_skipped(colour):
    out = to_rgb(image_msg(colour, "rgb8", step=5 * 3 + 9))
    assert np.array_equal(out, colour)


def test_float_thermal_keeps_nan_pixels_for_the_core_to_normalise():
    values = np.full((4, 4), 300.0, np.float32)
    values[0, 0] = np.nan
    out = to_thermal(image_msg(values, "32FC1"))
    assert out.dtype == np.float32 and np.isnan(out[0, 0]) and out[1, 1] == 300.0


def test_colour_mapped_thermal_becomes_rgb(colour):
    assert np.array_equal(to_thermal(image_msg(colour[:, :, ::-1], "bgr8")), colour)


@pytest.mark.parametrize("case, reason", [
    (lambda c: image_msg(c, "yuv422"), "not supported"),
    (lambda c: image_msg(c[:, :, 0].astype(np.uint16), "mono16"), "not supported"),  # 16-bit RGB
    (lambda c: image_msg(c, "rgb8", step=10), "smaller than a row"),
    (lambda c: image_msg(c, "rgb8", data=b"\x00" * 20), "expected step"),
    (lambda c: SimpleNamespace(height=0, width=5, encoding="rgb8", is_bigendian=0, step=15, data=b""),
     "empty image"),
    (lambda c: SimpleNamespace(height=10**6, width=5, encoding="rgb8", is_bigendian=0, step=15, data=b""),
     "exceeds"),
])
def test_malformed_rgb_images_are_rejected_with_a_reason(colour, case, reason):
    with pytest.raises(ImageError, match=reason):
        to_rgb(case(colour))


def test_odd_step_for_16_bit_is_rejected():
    msg = image_msg(np.zeros((3, 3), np.uint16), "mono16", step=7)
    with pytest.raises(ImageError, match="multiple"):
        to_thermal(msg)


def test_all_nan_float_thermal_is_rejected():
    with pytest.raises(ImageError, match="no finite"):
        to_thermal(image_msg(np.full((4, 4), np.nan, np.float32), "32FC1"))


def test_cv_bridge_is_used_when_given_and_its_errors_become_rejections(colour):
    class Bridge:
        calls = 0

        def imgmsg_to_cv2(self, msg, desired_encoding):
            Bridge.calls += 1
            assert desired_encoding == "passthrough"
            if msg.width == 5:
                return colour[:, :, ::-1]
            raise RuntimeError("boom")

    assert np.array_equal(to_rgb(image_msg(colour[:, :, ::-1], "bgr8"), bridge=Bridge()), colour)
    with pytest.raises(ImageError, match="cv_bridge"):
        decode(image_msg(colour[:, :4], "rgb8"), ("rgb8",), bridge=Bridge())
    assert Bridge.calls == 2
