#!/usr/bin/env python3
"""Node tests for operators whose signature changed in ONNX opsets 18-21, in the layout of the
ONNX backend test data (newer/<test>/model.onnx, test_data_set_0/{input,output}_N.pb), which
Debian's libonnx-testdata (ONNX 1.12) stops short of. Expected outputs are computed here
with numpy from the operator specifications, not by any runtime.

    /usr/bin/python3 tests/data/onnx_newer/make_newer_opset_tests.py

Seeded; re-running rewrites the same files. tests/onnx_backend/allowlist.txt lists the
expected result of each test (folder `newer` under this directory is run as
`onnx_backend.newer`).
"""
import math
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "newer")
rng = np.random.default_rng(18)


def elem_type(a):
    return helper.np_dtype_to_tensor_dtype(a.dtype) if hasattr(helper, "np_dtype_to_tensor_dtype") else \
        onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype]


def case(name, opset, node, inputs, outputs):
    """inputs/outputs: lists of (name, array)."""
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info(n, elem_type(a), a.shape) for n, a in inputs],
        [helper.make_tensor_value_info(n, elem_type(a), a.shape) for n, a in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnxtrain-tests")
    model.ir_version = 8 if opset < 21 else 10
    folder = os.path.join(ROOT, name)
    os.makedirs(os.path.join(folder, "test_data_set_0"))
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for kind, values in (("input", inputs), ("output", outputs)):
        for i, (n, a) in enumerate(values):
            with open(os.path.join(folder, "test_data_set_0", f"{kind}_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())


def floats(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def reductions():
    x = floats(2, 3, 4)
    ops = {
        "ReduceL1": lambda a, ax, k: np.sum(np.abs(a), axis=ax, keepdims=k),
        "ReduceL2": lambda a, ax, k: np.sqrt(np.sum(a * a, axis=ax, keepdims=k)),
        "ReduceLogSum": lambda a, ax, k: np.log(np.sum(np.abs(a), axis=ax, keepdims=k)),
        "ReduceLogSumExp": lambda a, ax, k: np.log(np.sum(np.exp(a), axis=ax, keepdims=k)),
        "ReduceMax": lambda a, ax, k: np.max(a, axis=ax, keepdims=k),
        "ReduceMean": lambda a, ax, k: np.mean(a, axis=ax, keepdims=k),
        "ReduceMin": lambda a, ax, k: np.min(a, axis=ax, keepdims=k),
        "ReduceProd": lambda a, ax, k: np.prod(a, axis=ax, keepdims=k),
        "ReduceSumSquare": lambda a, ax, k: np.sum(a * a, axis=ax, keepdims=k),
    }
    for op, f in ops.items():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in op)[1:]
        data = np.abs(x) + 0.5 if op == "ReduceLogSum" else x
        axes = np.array([2, -3], dtype=np.int64)
        node = helper.make_node(op, ["data", "axes"], ["reduced"], keepdims=1)
        case(f"test_{snake}_axes_input_op18", 18, node, [("data", data), ("axes", axes)],
             [("reduced", f(data, (2, 0), True).astype(np.float32))])
        node = helper.make_node(op, ["data"], ["reduced"], keepdims=0)
        case(f"test_{snake}_all_axes_op18", 18, node, [("data", data)],
             [("reduced", np.array(f(data, None, False), dtype=np.float32))])
    node = helper.make_node("ReduceMean", ["data", "axes"], ["reduced"], keepdims=1, noop_with_empty_axes=1)
    case("test_reduce_mean_empty_axes_noop_op18", 18, node,
         [("data", x), ("axes", np.array([], dtype=np.int64))], [("reduced", x)])
    for op, f in (("ReduceMax", np.max), ("ReduceMin", np.min)):
        node = helper.make_node(op, ["data", "axes"], ["reduced"], keepdims=0)
        case(f"test_{op[6:].lower().join(['reduce_', ''])}_op20", 20, node,
             [("data", x), ("axes", np.array([1], dtype=np.int64))], [("reduced", f(x, axis=1))])


def split():
    for name, shape, axis, n in (("even", (2, 6), 1, 3), ("uneven", (7,), 0, 3), ("uneven_4", (2, 10), 1, 4)):
        x = floats(*shape)
        chunk = math.ceil(shape[axis] / n)
        parts = [np.take(x, range(i * chunk, min((i + 1) * chunk, shape[axis])), axis=axis) for i in range(n)]
        outs = [f"y{i}" for i in range(n)]
        node = helper.make_node("Split", ["x"], outs, axis=axis, num_outputs=n)
        case(f"test_split_num_outputs_{name}_op18", 18, node, [("x", x)], list(zip(outs, parts)))


def pad():
    x = floats(2, 3, 4)
    pads = np.array([1, 2], dtype=np.int64)
    node = helper.make_node("Pad", ["x", "pads", "value", "axes"], ["y"], mode="constant")
    want = np.pad(x, [(0, 0), (0, 0), (1, 2)], constant_values=0.5)
    case("test_pad_axes_op18", 18, node,
         [("x", x), ("pads", pads), ("value", np.array(0.5, np.float32)), ("axes", np.array([-1], np.int64))],
         [("y", want)])
    node = helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect")
    want = np.pad(x, [(0, 0), (1, 1), (2, 0)], mode="reflect")
    case("test_pad_reflect_two_axes_op18", 18, node,
         [("x", x), ("pads", np.array([1, 2, 1, 0], np.int64)), ("axes", np.array([1, 2], np.int64))], [("y", want)])
    x2 = floats(3, 4)
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")
    case("test_pad_wrap_op19", 19, node, [("x", x2), ("pads", np.array([0, 1, 0, 2], np.int64))],
         [("y", np.pad(x2, [(0, 0), (1, 2)], mode="wrap"))])


def resize():
    x = floats(1, 2, 2, 3)
    # nearest + asymmetric + floor: out[i] = x[floor(i / scale)]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", axes=[2, 3],
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    want = x.repeat(2, axis=2).repeat(2, axis=3)
    case("test_resize_axes_scales_nearest_op18", 18, node,
         [("x", x), ("scales", np.array([2, 2], np.float32))], [("y", want)])
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", axes=[-1],
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    idx = [int(math.floor(i * 3 / 6)) for i in range(6)]
    case("test_resize_axes_sizes_nearest_op19", 19, node,
         [("x", x), ("sizes", np.array([6], np.int64))], [("y", x[..., idx])])


def resize_1d(data, scale, out_len, mode, antialias, exclude_outside=False, cubic_a=-0.75):
    """ONNX's Resize along one axis, half_pixel coordinates, as its reference evaluator
    does it (written out here: ONNX 1.12 has no reference evaluator): the n input pixels
    nearest x (ties to the smaller, edge-padded) weighted by the linear or cubic kernel,
    which antialias widens to 1/scale pixels when shrinking."""
    in_len = len(data)
    out = np.zeros(out_len)
    for j in range(out_len):
        x = (j + 0.5) / scale - 0.5
        if mode == "nearest":  # round_prefer_floor
            i = int(math.ceil(x - 0.5)) if x - math.floor(x) != 0.5 else int(math.floor(x))
            out[j] = data[min(max(i, 0), in_len - 1)]
            continue
        ratio = 1.0 if x == math.floor(x) else x - math.floor(x)
        s = min(scale, 1.0) if antialias else 1.0
        start = int(math.floor((-1 if mode == "linear" else -2) / s) + 1)
        offsets = np.arange(start, 2 - start)
        d = np.abs((offsets - ratio) * s)
        if mode == "linear":
            w = np.clip(1 - d, 0, 1)
        else:
            A = cubic_a
            w = np.where(d <= 1, (A + 2) * d**3 - (A + 3) * d**2 + 1,
                         np.where(d < 2, A * d**3 - 5 * A * d**2 + 8 * A * d - 4 * A, 0.0))
        base = math.ceil(x) - 1
        idx = base + offsets
        if exclude_outside:
            w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        w = w / w.sum()
        out[j] = np.dot(w, data[np.clip(idx, 0, in_len - 1)])
    return out


def resize_nd(x, scales, sizes, **kw):
    y = x.astype(np.float64)
    for axis, (scale, size) in enumerate(zip(scales, sizes)):
        if scale == 1 and size == x.shape[axis]:
            continue
        y = np.apply_along_axis(resize_1d, axis, y, scale, size, **kw)
    return y.astype(x.dtype)


def resize18():
    d = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    scales = np.array([1, 1, 0.6, 0.6], np.float32)
    for mode in ("linear", "cubic"):
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, antialias=1)
        want = resize_nd(d, scales, (1, 1, 2, 2), mode=mode, antialias=True)
        case(f"test_resize_downsample_scales_{mode}_antialias_op18", 18, node, [("x", d), ("scales", scales)], [("y", want)])
        node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode, antialias=1)
        want = resize_nd(d, (1, 1, 0.75, 0.75), (1, 1, 3, 3), mode=mode, antialias=True)
        case(f"test_resize_downsample_sizes_{mode}_antialias_op18", 18, node,
             [("x", d), ("sizes", np.array([1, 1, 3, 3], np.int64))], [("y", want)])
    x = floats(1, 2, 9, 7)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic", antialias=1, exclude_outside=1,
                            axes=[2, 3])
    want = resize_nd(x, (1, 1, 4 / 9, 3 / 7), (1, 2, 4, 3), mode="cubic", antialias=True, exclude_outside=True)
    case("test_resize_axes_sizes_cubic_antialias_exclude_outside_op19", 19, node,
         [("x", x), ("sizes", np.array([4, 3], np.int64))], [("y", want)])
    # keep_aspect_ratio_policy: one scale, min (not_larger) or max (not_smaller) of sizes / input.
    d2 = np.arange(1, 9, dtype=np.float32).reshape(1, 1, 2, 4)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", keep_aspect_ratio_policy="not_larger")
    want = resize_nd(d2, (1, 1, 0.5, 0.5), (1, 1, 1, 2), mode="nearest", antialias=False)
    case("test_resize_downsample_sizes_nearest_not_larger_op18", 18, node,
         [("x", d2), ("sizes", np.array([1, 1, 1, 3], np.int64))], [("y", want)])
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", keep_aspect_ratio_policy="not_smaller",
                            axes=[2, 3])
    want = resize_nd(x, (1, 1, 5 / 7, 5 / 7), (1, 2, round(9 * 5 / 7), 5), mode="linear", antialias=False)
    case("test_resize_axes_sizes_linear_not_smaller_op18", 18, node,
         [("x", x), ("sizes", np.array([3, 5], np.int64))], [("y", want)])


def pools():
    x = floats(1, 1, 5, 5)
    # AveragePool-19 with dilations: windows x[i + 2a, j + 2b], a, b in {0, 1}
    want = np.zeros((1, 1, 3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            want[0, 0, i, j] = x[0, 0, i:i + 3:2, j:j + 3:2].mean()
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])
    case("test_averagepool_2d_dilations_op19", 19, node, [("x", x)], [("y", want)])
    # LpPool-18 with ceil_mode: the last window holds only what lies inside the input.
    want = np.zeros((1, 1, 3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            w = x[0, 0, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
            want[0, 0, i, j] = np.sqrt((w * w).sum())
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], p=2, ceil_mode=1)
    case("test_lppool_2d_ceil_op18", 18, node, [("x", x)], [("y", want)])


def scatter():
    data = floats(3, 3)
    indices = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    updates = floats(2, 3)
    want = data.copy()
    for i in range(2):
        for j in range(3):
            want[indices[i, j], j] = max(want[indices[i, j], j], updates[i, j])
    node = helper.make_node("ScatterElements", ["data", "indices", "updates"], ["y"], axis=0, reduction="max")
    case("test_scatter_elements_max_op18", 18, node, [("data", data), ("indices", indices), ("updates", updates)],
         [("y", want)])
    data = floats(4, 2)
    indices = np.array([[1], [3], [1]], np.int64)
    updates = floats(3, 2)
    want = data.copy()
    for k in range(3):
        want[indices[k, 0]] = np.minimum(want[indices[k, 0]], updates[k])
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], reduction="min")
    case("test_scatternd_min_op18", 18, node, [("data", data), ("indices", indices), ("updates", updates)],
         [("y", want)])


def activations():
    x = floats(3, 4) * 3
    xd = x.astype(np.float64)
    mish = xd * np.tanh(np.log1p(np.exp(xd)))
    case("test_mish_op18", 18, helper.make_node("Mish", ["x"], ["y"]), [("x", x)], [("y", mish.astype(np.float32))])
    erf = np.vectorize(math.erf)
    gelu = 0.5 * xd * (1 + erf(xd / math.sqrt(2)))
    case("test_gelu_op20", 20, helper.make_node("Gelu", ["x"], ["y"]), [("x", x)], [("y", gelu.astype(np.float32))])
    gelu_tanh = 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    case("test_gelu_tanh_op20", 20, helper.make_node("Gelu", ["x"], ["y"], approximate="tanh"), [("x", x)],
         [("y", gelu_tanh.astype(np.float32))])


def group_norm():
    x = floats(2, 4, 3, 3)
    def normalized(groups):
        g = x.reshape(2, groups, -1).astype(np.float64)
        return ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    scale, bias = floats(2), floats(2)
    want = normalized(2).reshape(2, 2, -1) * scale[None, :, None] + bias[None, :, None]
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=2)
    case("test_group_normalization_op18", 18, node, [("x", x), ("scale", scale), ("bias", bias)],
         [("y", want.reshape(x.shape).astype(np.float32))])
    scale, bias = floats(4), floats(4)
    want = normalized(2) * scale[None, :, None, None] + bias[None, :, None, None]
    node = helper.make_node("GroupNormalization", ["x", "scale", "bias"], ["y"], num_groups=2)
    case("test_group_normalization_op21", 21, node, [("x", x), ("scale", scale), ("bias", bias)],
         [("y", want.astype(np.float32))])


def bitwise():
    a = rng.integers(-100, 100, (3, 4)).astype(np.int32)
    b = rng.integers(-100, 100, (4,)).astype(np.int32)
    for op, f in (("BitwiseAnd", np.bitwise_and), ("BitwiseOr", np.bitwise_or), ("BitwiseXor", np.bitwise_xor)):
        snake = "bitwise_" + op[7:].lower()
        case(f"test_{snake}_broadcast_op18", 18, helper.make_node(op, ["a", "b"], ["c"]), [("a", a), ("b", b)],
             [("c", f(a, b))])
    u = rng.integers(0, 255, (2, 5)).astype(np.uint8)
    case("test_bitwise_not_op18", 18, helper.make_node("BitwiseNot", ["x"], ["y"]), [("x", u)], [("y", np.invert(u))])


def widened_types():
    """Opsets 19-21 widened these operators' type lists only: float behaviour is unchanged."""
    x = floats(2, 3, 4)
    case("test_reshape_op21", 21, helper.make_node("Reshape", ["x", "shape"], ["y"]),
         [("x", x), ("shape", np.array([0, -1], np.int64))], [("y", x.reshape(2, 12))])
    case("test_transpose_op21", 21, helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1]), [("x", x)],
         [("y", x.transpose(2, 0, 1))])
    case("test_unsqueeze_op21", 21, helper.make_node("Unsqueeze", ["x", "axes"], ["y"]),
         [("x", x), ("axes", np.array([1], np.int64))], [("y", x[:, None])])
    case("test_squeeze_op21", 21, helper.make_node("Squeeze", ["x", "axes"], ["y"]),
         [("x", x[:, None]), ("axes", np.array([1], np.int64))], [("y", x)])
    case("test_flatten_op21", 21, helper.make_node("Flatten", ["x"], ["y"], axis=2), [("x", x)],
         [("y", x.reshape(6, 4))])
    case("test_identity_op21", 21, helper.make_node("Identity", ["x"], ["y"]), [("x", x)], [("y", x)])
    case("test_cast_op19", 19, helper.make_node("Cast", ["x"], ["y"], to=TensorProto.DOUBLE, saturate=1), [("x", x)],
         [("y", x.astype(np.float64))])
    case("test_cast_op21", 21, helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64), [("x", x * 10)],
         [("y", (x * 10).astype(np.int64))])
    case("test_shape_op21", 21, helper.make_node("Shape", ["x"], ["y"], start=1), [("x", x)],
         [("y", np.array([3, 4], np.int64))])
    case("test_size_op21", 21, helper.make_node("Size", ["x"], ["y"]), [("x", x)], [("y", np.array(24, np.int64))])
    value = helper.make_tensor("value", TensorProto.FLOAT, [1], [2.5])
    case("test_constant_of_shape_op21", 21, helper.make_node("ConstantOfShape", ["shape"], ["y"], value=value),
         [("shape", np.array([2, 3], np.int64))], [("y", np.full((2, 3), 2.5, np.float32))])
    case("test_equal_op19", 19, helper.make_node("Equal", ["a", "b"], ["y"]),
         [("a", np.array([1, 2, 3], np.int64)), ("b", np.array([1, 0, 3], np.int64))],
         [("y", np.array([True, False, True]))])


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for make in (reductions, split, pad, resize, pools, scatter, activations, group_norm, bitwise, widened_types, resize18):
        make()
    print(f"wrote {len(os.listdir(ROOT))} tests to {ROOT}")
