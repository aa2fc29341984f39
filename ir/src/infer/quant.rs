//! Quantisation: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
//! (QLinearConv and QLinearMatMul are with their float forms).

use super::{Ctx, Rule};
use crate::dtype::DType;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("QuantizeLinear", quantize),
    ("DequantizeLinear", dequantize),
    ("DynamicQuantizeLinear", dynamic_quantize),
];

fn with_x_shape(cx: &mut Ctx, dtype: DType) {
    match cx.shape(0) {
        Some(s) => cx.set_shape(0, dtype, s.to_vec()),
        None => cx.set_dtype(0, dtype),
    }
}

/// `y` has the zero point's type; without one, `output_dtype` (opset 21)
/// or uint8.
fn quantize(cx: &mut Ctx) {
    let dtype = cx
        .dtype(2)
        .or_else(|| {
            cx.int_attr("output_dtype")
                .filter(|&t| t != 0)
                .map(|t| DType(t as i32))
        })
        .unwrap_or(DType::UINT8);
    with_x_shape(cx, dtype);
}

/// `y` has the scale's type (float, f16 or bf16).
fn dequantize(cx: &mut Ctx) {
    let dtype = cx
        .dtype(1)
        .or_else(|| {
            cx.int_attr("output_dtype")
                .filter(|&t| t != 0)
                .map(|t| DType(t as i32))
        })
        .unwrap_or(DType::FLOAT);
    with_x_shape(cx, dtype);
}

/// `y: u8` of x's shape, `y_scale: f32[]`, `y_zero_point: u8[]`.
fn dynamic_quantize(cx: &mut Ctx) {
    with_x_shape(cx, DType::UINT8);
    cx.set_shape(1, DType::FLOAT, vec![]);
    cx.set_shape(2, DType::UINT8, vec![]);
}
