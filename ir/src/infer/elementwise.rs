//! Element-wise ops: unary maps, broadcasting binary and variadic ops,
//! comparisons and logic, Where, Cast, Dropout.

use super::dims::broadcast;
use super::{Ctx, Rule};
use crate::dtype::DType;
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    // Same type as the input.
    ("Abs", unary),
    ("Acos", unary),
    ("Acosh", unary),
    ("Asin", unary),
    ("Asinh", unary),
    ("Atan", unary),
    ("Atanh", unary),
    ("BitwiseNot", unary),
    ("Ceil", unary),
    ("Celu", unary),
    ("Clip", unary),
    ("Cos", unary),
    ("Cosh", unary),
    ("CumSum", unary),
    ("Elu", unary),
    ("Erf", unary),
    ("Exp", unary),
    ("Floor", unary),
    ("Gelu", unary),
    ("HardSigmoid", unary),
    ("HardSwish", unary),
    ("Hardmax", unary),
    ("Identity", unary),
    ("LeakyRelu", unary),
    ("Log", unary),
    ("LogSoftmax", unary),
    ("Mish", unary),
    ("Neg", unary),
    ("Not", unary),
    ("Reciprocal", unary),
    ("Relu", unary),
    ("Round", unary),
    ("Selu", unary),
    ("Shrink", unary),
    ("Sigmoid", unary),
    ("Sign", unary),
    ("Sin", unary),
    ("Sinh", unary),
    ("Softmax", unary),
    ("Softplus", unary),
    ("Softsign", unary),
    ("Sqrt", unary),
    ("Tan", unary),
    ("Tanh", unary),
    ("ThresholdedRelu", unary),
    ("Trilu", unary),
    ("IsNaN", is_class),
    ("IsInf", is_class),
    // Broadcasting, type of the first input.
    ("Add", binary),
    ("Sub", binary),
    ("Mul", binary),
    ("Div", binary),
    ("Pow", binary),
    ("Mod", binary),
    ("BitShift", binary),
    ("BitwiseAnd", binary),
    ("BitwiseOr", binary),
    ("BitwiseXor", binary),
    ("PRelu", binary),
    ("Max", binary),
    ("Min", binary),
    ("Mean", binary),
    ("Sum", binary),
    // Broadcasting, bool result.
    ("Equal", compare),
    ("Less", compare),
    ("Greater", compare),
    ("LessOrEqual", compare),
    ("GreaterOrEqual", compare),
    ("And", compare),
    ("Or", compare),
    ("Xor", compare),
    ("Where", where_),
    ("Cast", cast),
    ("CastLike", cast_like),
    ("Dropout", dropout),
];

fn unary(cx: &mut Ctx) {
    cx.same_as(0, 0);
}

fn is_class(cx: &mut Ctx) {
    if let Some(s) = cx.shape(0) {
        cx.set_shape(0, DType::BOOL, s.to_vec());
    } else {
        cx.set_dtype(0, DType::BOOL);
    }
}

/// The broadcast shape of every present input; before opset 7, a binary
/// op with `broadcast=1` has the first input's shape.
fn broadcast_inputs(cx: &Ctx) -> Option<Vec<Dim>> {
    if cx.opset() < 7 && cx.int_attr("broadcast") == Some(1) {
        return cx.shape(0).map(<[Dim]>::to_vec);
    }
    let shapes: Vec<&[Dim]> = (0..cx.n_inputs())
        .filter(|&i| cx.has_input(i))
        .map(|i| cx.shape(i))
        .collect::<Option<_>>()?;
    broadcast(&shapes)
}

fn binary(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(0) else { return };
    match broadcast_inputs(cx) {
        Some(s) => cx.set_shape(0, dtype, s),
        None => cx.set_dtype(0, dtype),
    }
}

fn compare(cx: &mut Ctx) {
    match broadcast_inputs(cx) {
        Some(s) => cx.set_shape(0, DType::BOOL, s),
        None => cx.set_dtype(0, DType::BOOL),
    }
}

/// `Where(cond, x, y)`: the three broadcast, the type of `x`.
fn where_(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(1).or_else(|| cx.dtype(2)) else {
        return;
    };
    match broadcast_inputs(cx) {
        Some(s) => cx.set_shape(0, dtype, s),
        None => cx.set_dtype(0, dtype),
    }
}

fn retype(cx: &mut Ctx, dtype: DType) {
    match cx.shape(0) {
        Some(s) => cx.set_shape(0, dtype, s.to_vec()),
        None => cx.set_dtype(0, dtype),
    }
}

fn cast(cx: &mut Ctx) {
    if let Some(to) = cx.int_attr("to") {
        retype(cx, DType(to as i32));
    }
}

fn cast_like(cx: &mut Ctx) {
    if let Some(to) = cx.dtype(1) {
        retype(cx, to);
    }
}

/// Y is X; the optional mask is bool of X's shape.
fn dropout(cx: &mut Ctx) {
    cx.same_as(0, 0);
    if cx.n_outputs() > 1 {
        if let Some(s) = cx.shape(0) {
            cx.set_shape(1, DType::BOOL, s.to_vec());
        }
    }
}
