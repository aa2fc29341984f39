"""Writes the inputs of ir/tests/fuzz_regressions/. Run from the repository
root:

    python3 fuzz/make_regressions.py

* `handmade_*.bin`: hand-made nasty files; ir/tests/fuzz_regressions.rs
  asserts the specific error kind of each one.
* the other files: crashers `cargo fuzz run import` found, minimised by hand
  to the construct that triggered the bug (the raw artifacts were 55 KB
  mutations of a real model that `cargo fuzz tmin` could not shrink: protobuf
  length prefixes defeat byte-level minimisation). Each must import without
  panicking (and round-trip) or be refused with an `IrError`.
"""
import os
import random

from onnx import TensorProto as T
from onnx import helper as h

OUT = "ir/tests/fuzz_regressions"


def vi(name, t=T.FLOAT, shape=None):
    return h.make_tensor_value_info(name, t, shape)


def model(graph, opset=13):
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="npuopt-fuzz")
    m.ir_version = 8
    return m.SerializeToString()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


relu = model(h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                          [vi("x", shape=[1, 3])], [vi("y", shape=[1, 3])]))

# Zero bytes decode as an empty ModelProto: no graph.
write("handmade_empty.bin", b"")
# A valid model cut in the middle of a length-delimited field.
write("handmade_truncated.bin", relu[: len(relu) // 2])
# Noise that is not a protobuf message.
rng = random.Random(20240611)
write("handmade_random.bin", bytes([0x0a, 0xff, 0xff]) + bytes(rng.randrange(256) for _ in range(509)))

# An initializer whose dims multiply past u64 (2^32 * 2^32 * 2 = 2^65).
big = T()
big.name = "huge"
big.data_type = T.FLOAT
big.dims.extend([1 << 32, 1 << 32, 2])
write("handmade_dims_overflow.bin", model(h.make_graph(
    [h.make_node("Add", ["x", "huge"], ["y"], name="add")], "g", [vi("x")], [vi("y")], initializer=[big])))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested_if(depth):
    """`depth` Ifs, each the then-branch of the one above; the innermost
    branch reads `x` and every inner If `c` from the outermost scope. Encoded by hand: the protobuf
    runtime refuses to build messages this deep."""
    g = h.make_graph([h.make_node("Identity", ["x"], ["y0"], name="leaf")], "leaf", [], [vi("y0")])
    g = g.SerializeToString()
    for d in range(1, depth + 1):
        els = h.make_graph([h.make_node("Identity", ["x"], [f"e{d}"], name=f"else{d}")], f"else{d}", [], [vi(f"e{d}")])
        node = h.make_node("If", ["c"], [f"y{d}"], name=f"if{d}", else_branch=els).SerializeToString()
        then = h.make_attribute("then_branch", h.make_graph([], "", [], []))
        then.ClearField("g")
        node += field(5, then.SerializeToString() + field(6, g))  # NodeProto.attribute, AttributeProto.g
        outer = h.make_graph([], f"level{d}", [], [vi(f"y{d}")])
        if d == depth:
            outer.input.extend([vi("c", T.BOOL, []), vi("x", shape=[2])])
        g = outer.SerializeToString() + field(1, node)  # GraphProto.node
    m = h.make_model(h.make_graph([], "", [], []), opset_imports=[h.make_opsetid("", 13)], producer_name="npuopt-fuzz")
    m.ir_version = 8
    m.ClearField("graph")
    return m.SerializeToString() + field(7, g)  # ModelProto.graph


# 200 levels of If: past protobuf's nesting limit, refused at decode.
write("handmade_nested_if_200.bin", nested_if(200))
# 30 levels stays under the limit: imports, captures `x` through every level.
write("handmade_nested_if_30.bin", nested_if(30))


# ---- crashers found by the fuzzer, minimised ----
def init(name, *dims):
    t = T()
    t.name = name
    t.data_type = T.FLOAT
    t.dims.extend(dims)
    n = 1
    for d in dims:
        n *= d
    t.float_data.extend([0.0] * n)
    return t


# Conv with strides=[0, 1]: shape inference divided by the stride.
write("conv_stride_zero.bin", model(h.make_graph(
    [h.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[0, 1])], "g",
    [vi("x", shape=[1, 1, 4, 4])], [vi("y")], initializer=[init("w", 1, 1, 1, 1)])))


# ---- found by reading the code the fuzzer exercises, not by the fuzzer ----
# (valid or merely odd models whose bytes libFuzzer's blind mutation of
# protobuf did not reach in 40 minutes; each panicked before its fix)
def i64s(name, values):
    t = T()
    t.name = name
    t.data_type = T.INT64
    t.dims.append(len(values))
    t.int64_data.extend(values)
    return t


I64_MAX = (1 << 63) - 1

# A valid model: Slice with a negative step over a dim of size 0. The clamp
# range of the start, [0, d - 1], is empty and `Ord::clamp` panics.
write("slice_negative_step_empty_dim.bin", model(h.make_graph(
    [h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice")], "g",
    [vi("x", shape=[0, 3])], [vi("y")],
    initializer=[i64s("st", [-1]), i64s("en", [-100]), i64s("ax", [0]), i64s("sp", [-1])])))

# Slice with step i64::MIN: `-step` overflows.
write("slice_step_min.bin", model(h.make_graph(
    [h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice")], "g",
    [vi("x", shape=[4])], [vi("y")],
    initializer=[i64s("st", [3]), i64s("en", [0]), i64s("ax", [0]), i64s("sp", [-(1 << 63)])])))

# Slice with step i64::MAX: `end - start + step - 1` overflows.
write("slice_step_max.bin", model(h.make_graph(
    [h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice")], "g",
    [vi("x", shape=[4])], [vi("y")],
    initializer=[i64s("st", [0]), i64s("en", [4]), i64s("ax", [0]), i64s("sp", [I64_MAX])])))

# A sparse initializer that is a graph output: dump did not number it.
sp = h.make_sparse_tensor(h.make_tensor("spv", T.FLOAT, [2], [1.0, 2.0]), h.make_tensor("spi", T.INT64, [2], [0, 3]), [4])
write("sparse_initializer_graph_output.bin", model(h.make_graph(
    [h.make_node("Relu", ["x"], ["y"], name="relu")], "g", [vi("x", shape=[4])], [vi("y"), vi("spv")],
    sparse_initializer=[sp])))

# An If whose branch reads a sparse initializer of the outer graph.
then = h.make_graph([h.make_node("Identity", ["spv"], ["t"], name="tid")], "then", [], [vi("t")])
els = h.make_graph([h.make_node("Identity", ["spv"], ["e"], name="eid")], "else", [], [vi("e")])
write("if_captures_sparse_initializer.bin", model(h.make_graph(
    [h.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=els)], "g",
    [vi("c", T.BOOL, [])], [vi("y")], sparse_initializer=[sp])))

# int4 initializer of 2^62 elements without data: n * bits overflows u64.
t = T()
t.name = "i4"
t.data_type = T.INT4
t.dims.append(1 << 62)
write("int4_numel_times_bits_overflow.bin", model(h.make_graph(
    [h.make_node("Identity", ["i4"], ["y"], name="id")], "g", [], [vi("y")], initializer=[t])))

# complex64 initializer of 2^63 elements without data: 2 * n overflows u64.
t = T()
t.name = "c64"
t.data_type = T.COMPLEX64
t.dims.extend([1 << 62, 2])  # n = 2^63
write("complex64_numel_times_two_overflow.bin", model(h.make_graph(
    [h.make_node("Identity", ["c64"], ["y"], name="id")], "g", [], [vi("y")], initializer=[t])))

# Declared dims whose products or sums overflow i64 in shape inference.
big = [1 << 32, 1 << 32]
write("flatten_dims_overflow.bin", model(h.make_graph(
    [h.make_node("Flatten", ["x"], ["y"], name="flat", axis=2)], "g",
    [vi("x", shape=big + [1])], [vi("y")])))
write("reshape_dims_overflow.bin", model(h.make_graph(
    [h.make_node("Reshape", ["x", "s"], ["y"], name="reshape")], "g",
    [vi("x", shape=big)], [vi("y")], initializer=[i64s("s", [-1])])))
write("concat_dims_overflow.bin", model(h.make_graph(
    [h.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0)], "g",
    [vi("x", shape=[I64_MAX])], [vi("y")])))
write("pad_dims_overflow.bin", model(h.make_graph(
    [h.make_node("Pad", ["x"], ["y"], name="pad", pads=[I64_MAX, I64_MAX])], "g",
    [vi("x", shape=[1])], [vi("y")]), opset=2))
write("maxpool_pads_overflow.bin", model(h.make_graph(
    [h.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[1], pads=[I64_MAX, I64_MAX], dilations=[I64_MAX])], "g",
    [vi("x", shape=[1, 1, I64_MAX])], [vi("y")])))
