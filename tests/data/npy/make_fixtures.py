#!/usr/bin/python3
"""Writes the .npy/.npz fixtures for tests/unit/npy_test.cpp with Debian's numpy.

Run from anywhere:  /usr/bin/python3 tests/data/npy/make_fixtures.py
The values are simple formulas the C++ test recomputes; keep the two in sync.
"""
import io
import os
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, array, version=None):
    with open(os.path.join(HERE, name), "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def patched_header(name, array, old, new):
    """An .npy whose header text has `old` replaced by the same-length `new`."""
    assert len(old) == len(new)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array)
    data = buf.getvalue()
    assert data.count(old) == 1
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data.replace(old, new))


# Every supported dtype as a 2x3 array: 0..5 shifted to cover negatives, plus the extremes.
ints = {"i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64}
for code, t in ints.items():
    info = np.iinfo(t)
    save(f"{code}.npy", np.array([[info.min, -1, 0], [1, 42, info.max]], dtype=t))
uints = {"u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64}
for code, t in uints.items():
    save(f"{code}.npy", np.array([[0, 1, 2], [42, 255, np.iinfo(t).max]], dtype=t))
floats = np.array([[-1.5, 0.0, 0.25], [3.0, np.inf, -np.inf]])
save("f2.npy", floats.astype(np.float16))
save("f4.npy", floats.astype(np.float32))
save("f8.npy", floats.astype(np.float64))
save("b1.npy", np.array([[True, False, True], [False, False, True]]))

# Big-endian arrays (np.save keeps the byte order of the array).
save("be_f4.npy", floats.astype(">f4"))
save("be_i8.npy", np.array([[ -2, -1, 0], [1, 2, 2**40]], dtype=">i8"))
save("be_u2.npy", np.array([1, 2, 258, 65535], dtype=">u2"))
save("be_f2.npy", floats.astype(">f2"))

# Fortran order: arange in C order, stored column-major.
save("fortran_f4.npy", np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)))
save("fortran_i2.npy", np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)))
save("fortran_1d.npy", np.asfortranarray(np.arange(5, dtype=np.int32)))

# 0-d and empty arrays.
save("scalar_f8.npy", np.array(3.5))
save("empty_f4.npy", np.zeros((0,), dtype=np.float32))
save("empty_2x0x3_i8.npy", np.zeros((2, 0, 3), dtype=np.int64))

# Format versions 2.0 and 3.0 (numpy picks them for huge or non-latin1 headers).
save("v2_f4.npy", floats.astype(np.float32), version=(2, 0))
save("v3_f4.npy", floats.astype(np.float32), version=(3, 0))

# The '=' and '|' byte-order markers, which numpy accepts but never writes for these types.
patched_header("native_eq_f4.npy", floats.astype(np.float32), b"'<f4'", b"'=f4'")
patched_header("native_bar_u2.npy", np.array([1, 2, 258, 65535], dtype="<u2"), b"'<u2'", b"'|u2'")

# Unsupported dtypes, for the error messages.
save("complex_c8.npy", np.array([1 + 2j, 3 - 4j], dtype=np.complex64))
save("object.npy", np.array([1, "two", None], dtype=object))

# Archives: stored (np.savez) and deflated (np.savez_compressed) with the same members.
members = {
    "weights": np.arange(12, dtype=np.float32).reshape(3, 4) / 4,
    "bias": np.array([-1.0, 0.5, 2.0], dtype=np.float64),
    "steps": np.array(7, dtype=np.int64),
    "mask": np.array([True, False, True, True]),
    "nested/name": np.array([[1, 2], [3, 4]], dtype=np.uint8),
    "empty": np.zeros((0, 3), dtype=np.float16),
}
np.savez(os.path.join(HERE, "stored.npz"), **members)
np.savez_compressed(os.path.join(HERE, "compressed.npz"), **members)

# A zip64 archive written by numpy: zipfile switches to zip64 directory records above these
# limits, so lowering them makes it write every record in zip64 form at fixture size.
saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 0, 0
try:
    np.savez_compressed(os.path.join(HERE, "zip64.npz"), a=members["weights"], b=members["bias"])
finally:
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved
with zipfile.ZipFile(os.path.join(HERE, "zip64.npz")) as z:
    assert z.testzip() is None
with open(os.path.join(HERE, "zip64.npz"), "rb") as f:
    assert b"PK\x06\x06" in f.read(), "expected a zip64 end-of-central-directory record"
