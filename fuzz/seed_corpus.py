"""Writes small valid ONNX models covering the ops the IR types (and If,
Loop, sparse and external initializers) as the fuzzer's seed corpus:

    python3 seed_corpus.py corpus/import
"""
import os
import sys

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

out = sys.argv[1] if len(sys.argv) > 1 else "corpus/import"
os.makedirs(out, exist_ok=True)
def vi(n, t=T.FLOAT, s=None): return h.make_tensor_value_info(n, t, s)
def save(name, nodes, inputs, outputs, inits=(), vinfo=(), opset=13, sparse=()):
    g = h.make_graph(nodes, name, inputs, outputs, initializer=list(inits), value_info=list(vinfo), sparse_initializer=list(sparse))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="fuzzseed")
    m.ir_version = 8
    with open(os.path.join(out, name + ".onnx"), "wb") as f: f.write(m.SerializeToString())
f32 = lambda *s: np.arange(np.prod(s), dtype=np.float32).reshape(s)
save("relu", [h.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", s=[1, 3])], [vi("y", s=[1, 3])])
save("conv_bn", [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1),
                 h.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], name="bn", epsilon=1e-5)],
     [vi("x", s=["N", 2, 5, 5])], [vi("y")],
     [nh.from_array(f32(2, 2, 3, 3), "w"), nh.from_array(f32(2), "b"), nh.from_array(f32(2), "s"), nh.from_array(f32(2), "bb"), nh.from_array(f32(2), "m"), nh.from_array(f32(2) + 1, "v")])
save("pool_flatten_gemm", [h.make_node("MaxPool", ["x"], ["p"], name="mp", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
                           h.make_node("AveragePool", ["p"], ["a"], name="ap", kernel_shape=[1, 1], auto_pad="SAME_UPPER"),
                           h.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
                           h.make_node("Flatten", ["g"], ["f"], name="fl", axis=1),
                           h.make_node("Gemm", ["f", "W", "B"], ["y"], name="gemm", transB=1, alpha=1.0, beta=1.0)],
     [vi("x", s=[1, 4, 6, 6])], [vi("y")], [nh.from_array(f32(3, 4), "W"), nh.from_array(f32(3), "B")])
save("reshape_transpose", [h.make_node("Reshape", ["x", "shape"], ["r"], name="rs"),
                           h.make_node("Transpose", ["r"], ["t"], name="tr", perm=[1, 0]),
                           h.make_node("MatMul", ["t", "M"], ["y"], name="mm")],
     [vi("x", s=[2, 3, 4])], [vi("y")], [nh.from_array(np.array([6, -1], dtype=np.int64), "shape"), nh.from_array(f32(6, 2), "M")])
save("binary_concat", [h.make_node("Add", ["x", "c"], ["a"], name="add"), h.make_node("Mul", ["a", "x"], ["m"], name="mul"),
                       h.make_node("Sub", ["m", "c"], ["s"], name="sub"), h.make_node("Div", ["s", "c"], ["d"], name="div"),
                       h.make_node("Sum", ["a", "m", "d"], ["u"], name="sum"),
                       h.make_node("Concat", ["u", "x"], ["y"], name="cat", axis=-1)],
     [vi("x", s=["B", 4])], [vi("y")], [h.make_tensor("c", T.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])])
save("pad_clip_misc", [h.make_node("Constant", [], ["pads"], name="k", value=nh.from_array(np.array([0, 1, 0, 1], dtype=np.int64))),
                       h.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant"),
                       h.make_node("Clip", ["p", "", "hi"], ["c"], name="clip"),
                       h.make_node("HardSigmoid", ["c"], ["hs"], name="hsig", alpha=0.1),
                       h.make_node("HardSwish", ["hs"], ["hw"], name="hswish"),
                       h.make_node("Sigmoid", ["hw"], ["sg"], name="sig"),
                       h.make_node("Dropout", ["sg"], ["dr", "mask"], name="drop"),
                       h.make_node("Identity", ["dr"], ["y"], name="id"),
                       h.make_node("Constant", [], ["cf"], name="kf", value_floats=[1.0, 2.0]),
                       h.make_node("Constant", [], ["ci"], name="ki", value_int=3)],
     [vi("x", s=[2, 3])], [vi("y"), vi("mask", T.BOOL), vi("cf"), vi("ci", T.INT64)], [h.make_tensor("hi", T.FLOAT, [], [6.0])],
     vinfo=[vi("p", s=[2, 5]), vi("nowhere", s=[1])])
save("split_slice", [h.make_node("Split", ["x", "sp"], ["a", "b"], name="split", axis=1),
                     h.make_node("Slice", ["a", "st", "en"], ["s"], name="slice"),
                     h.make_node("ConvTranspose", ["x4", "w"], ["ct"], name="ct", kernel_shape=[2, 2], strides=[2, 2]),
                     h.make_node("Foo", ["s", "b"], ["y"], name="custom", domain="com.example", alpha=1.5)],
     [vi("x", s=[2, 4]), vi("x4", s=[1, 1, 2, 2])], [vi("y"), vi("ct")],
     [nh.from_array(np.array([2, 2], dtype=np.int64), "sp"), nh.from_array(np.array([0], dtype=np.int64), "st"), nh.from_array(np.array([1], dtype=np.int64), "en"),
      nh.from_array(f32(1, 1, 2, 2), "w"), h.make_tensor("i4", T.INT4, [3], [1, 2, 3]), h.make_tensor("f16", T.FLOAT16, [2], np.array([1, 2], dtype=np.float16).view(np.uint16).tolist()),
      h.make_tensor("strs", T.STRING, [2], [b"a", b"bc"]), h.make_tensor("dbl", T.DOUBLE, [1], [1.5])], opset=11)
then = h.make_graph([h.make_node("Add", ["x", "outer"], ["t"], name="tadd")], "then", [], [vi("t")])
els = h.make_graph([h.make_node("Relu", ["x"], ["e"], name="erelu")], "else", [], [vi("e")])
inner_then = h.make_graph([h.make_node("If", ["cond"], ["it"], name="inner_if", then_branch=then, else_branch=els)], "nested", [], [vi("it")])
save("if_nested", [h.make_node("Identity", ["x"], ["outer"], name="idx"),
                   h.make_node("If", ["cond"], ["y"], name="if", then_branch=inner_then, else_branch=els)],
     [vi("cond", T.BOOL, []), vi("x", s=[2])], [vi("y")])
loop_body = h.make_graph([h.make_node("Add", ["v", "x"], ["v2"], name="ladd"), h.make_node("Identity", ["c"], ["c2"], name="lid")],
                         "body", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("v")], [vi("c2", T.BOOL, []), vi("v2")])
save("loop", [h.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=loop_body)], [vi("n", T.INT64, []), vi("x", s=[2])], [vi("y")])
sp = h.make_sparse_tensor(h.make_tensor("spv", T.FLOAT, [2], [1.0, 2.0]), h.make_tensor("spi", T.INT64, [2], [0, 3]), [4])
save("sparse", [h.make_node("Add", ["x", "spv"], ["y"], name="sadd")], [vi("x", s=[4])], [vi("y")], sparse=[sp])
save("legacy_opset1", [h.make_node("Add", ["x", "c"], ["y"], name="ladd", broadcast=1, axis=1),
                       h.make_node("Reshape", ["y"], ["r"], name="lrs", shape=[-1])],
     [vi("x", s=[2, 3]), vi("c", s=[3])], [vi("r")], [nh.from_array(f32(3), "c")], opset=1)
ext = nh.from_array(f32(4), "e"); ext.ClearField("raw_data"); ext.data_location = T.EXTERNAL
ext.external_data.add(key="location", value="w.bin")
save("external", [h.make_node("Add", ["x", "e"], ["y"], name="eadd")], [vi("x", s=[4])], [vi("y")], [ext])
# Seeds for the inference of Slice, reductions and Cast (typed inputs,
# constant starts/ends/axes/steps, declared dims including 0).
save("slice_typed", [h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"], name="slice"),
                     h.make_node("ReduceMean", ["s"], ["r"], name="rm", axes=[-1], keepdims=1),
                     h.make_node("Cast", ["r"], ["c"], name="cast", to=T.DOUBLE),
                     h.make_node("Slice", ["x", "st2", "en2"], ["z"], name="slice0"),
                     h.make_node("Reshape", ["x", "rs"], ["y"], name="rs", allowzero=0)],
     [vi("x", s=[0, 5, 7])], [vi("c"), vi("z"), vi("y")],
     [nh.from_array(np.array([-1, 2], dtype=np.int64), "st"), nh.from_array(np.array([-100, 9], dtype=np.int64), "en"),
      nh.from_array(np.array([0, 2], dtype=np.int64), "ax"), nh.from_array(np.array([-1, 2], dtype=np.int64), "sp"),
      nh.from_array(np.array([1], dtype=np.int64), "st2"), nh.from_array(np.array([4], dtype=np.int64), "en2"),
      nh.from_array(np.array([0, -1, 7], dtype=np.int64), "rs")], opset=13)
save("legacy_slice_pad", [h.make_node("Slice", ["x"], ["s"], name="slice", starts=[0, 1], ends=[1, 3], axes=[0, 1]),
                          h.make_node("Pad", ["s"], ["p"], name="pad", pads=[1, 1, 1, 1], mode="constant", value=0.0),
                          h.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
                          h.make_node("Concat", ["f", "f"], ["y"], name="cat", axis=0)],
     [vi("x", s=[2, 4])], [vi("y")], opset=9)
