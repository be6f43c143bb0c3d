import numpy as np
import pytest

from streamad.io.codecs import PayloadError, decode_audio, encode_audio


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_round_trip_mono_and_stereo(dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, 800).astype(np.float32)
    k, v, h = encode_audio("mic-1", x, 16000, 1700000000.25, dtype)
    c = decode_audio(k, v, h)
    assert c.stream_id == "mic-1" and c.sample_rate == 16000 and c.timestamp == 1700000000.25
    np.testing.assert_allclose(c.samples, x, atol=1e-4 if dtype == "int16" else 0)
    st = np.stack([x, 0.5 * x], axis=1)  # channels are averaged, not summed: 0.75 x
    c2 = decode_audio(*encode_audio("m", st, 8000, 1.0, dtype))
    np.testing.assert_allclose(c2.samples, 0.75 * x, atol=1e-4 if dtype == "int16" else 1e-7)


def _hdr(**kw):
    base = {"sample_rate": b"16000", "dtype": b"int16", "channels": b"1", "timestamp": b"1.0"}
    base.update(kw)
    return [(k, v) for k, v in base.items() if v is not None]


@pytest.mark.parametrize("key,value,headers,reason", [
    (None, b"\0\0", _hdr(), "missing key"),
    (b"s", b"\0\0", _hdr(sample_rate=None), "sample_rate"),
    (b"s", b"\0\0", _hdr(sample_rate=b"abc"), "sample_rate"),
    (b"s", b"\0\0", _hdr(dtype=b"int8"), "dtype"),
    (b"s", b"\0\0", _hdr(channels=b"0"), "channels"),
    (b"s", b"\0\0", _hdr(timestamp=b"nan"), "timestamp"),
    (b"s", b"", _hdr(), "empty"),
    (b"s", b"\0\0\0", _hdr(), "whole number"),
    (b"s", np.array([np.nan], "<f4").tobytes(), _hdr(dtype=b"float32"), "NaN"),
])
def test_bad_payloads_have_reasons(key, value, headers, reason):
    with pytest.raises(PayloadError) as e:
        decode_audio(key, value, headers)
    assert reason in str(e.value)
