//! Comparisons and selections: Max/Min (two inputs), Equal/Less/Greater,
//! Not, Where, and ReduceMax/ReduceMin — exact on every numeric dtype the
//! evaluator reads (a max or a comparison never rounds).

use super::arith::{broadcast_dims, broadcast_index, broadcast_pairs};
use super::movement::strides;
use super::value::{encode_ints, is_int};
use super::Val;
use crate::dtype::DType;

/// The elements as numbers: f64 holds every f32 exactly.
enum Nums {
    F(Vec<f64>),
    I(Vec<i64>),
}

fn nums(v: &Val) -> Option<Nums> {
    Some(match v.dtype {
        DType::FLOAT => Nums::F(v.f32s().into_iter().map(f64::from).collect()),
        DType::DOUBLE => Nums::F(v.f64s()),
        d if is_int(d) || d == DType::BOOL => Nums::I(v.ints()?),
        _ => return None,
    })
}

fn encode(dtype: DType, dims: Vec<i64>, n: Nums) -> Option<Val> {
    let bytes = match (dtype, n) {
        (DType::FLOAT, Nums::F(v)) => v.iter().flat_map(|&f| (f as f32).to_le_bytes()).collect(),
        (DType::DOUBLE, Nums::F(v)) => v.iter().flat_map(|f| f.to_le_bytes()).collect(),
        (d, Nums::I(v)) => encode_ints(d, &v)?,
        _ => return None,
    };
    Some(Val {
        dtype,
        dims,
        bytes: bytes.into(),
    })
}

fn bools(dims: Vec<i64>, v: impl Iterator<Item = bool>) -> Val {
    Val {
        dtype: DType::BOOL,
        dims,
        bytes: v.map(u8::from).collect(),
    }
}

/// Max, Min, Equal, Less, Greater of two inputs, broadcast.
pub fn compare(op: &str, x: &Val, y: &Val) -> Option<Val> {
    let (dims, xi, yi) = broadcast_pairs(x, y)?;
    let pairs = xi.iter().zip(&yi);
    macro_rules! apply {
        ($a:expr, $b:expr, $wrap:path) => {{
            let (a, b) = ($a, $b);
            match op {
                "Max" | "Min" => {
                    let max = op == "Max";
                    let v = pairs
                        .map(|(&i, &j)| {
                            let (p, q) = (a[i], b[j]);
                            if (p > q) == max {
                                p
                            } else {
                                q
                            }
                        })
                        .collect();
                    encode(x.dtype, dims, $wrap(v))
                }
                "Equal" => Some(bools(dims, pairs.map(|(&i, &j)| a[i] == b[j]))),
                "Less" => Some(bools(dims, pairs.map(|(&i, &j)| a[i] < b[j]))),
                "Greater" => Some(bools(dims, pairs.map(|(&i, &j)| a[i] > b[j]))),
                _ => None,
            }
        }};
    }
    match (nums(x)?, nums(y)?) {
        (Nums::F(a), Nums::F(b)) => {
            // A NaN makes Max/Min runtime-dependent.
            if matches!(op, "Max" | "Min") && a.iter().chain(&b).any(|v| v.is_nan()) {
                return None;
            }
            apply!(a, b, Nums::F)
        }
        (Nums::I(a), Nums::I(b)) => apply!(a, b, Nums::I),
        _ => None,
    }
}

pub fn not(x: &Val) -> Option<Val> {
    (x.dtype == DType::BOOL).then(|| bools(x.dims.clone(), x.bytes.iter().map(|&b| b == 0)))
}

/// `Where(cond, x, y)`, broadcast.
pub fn where_(c: &Val, x: &Val, y: &Val) -> Option<Val> {
    if c.dtype != DType::BOOL || x.dtype != y.dtype {
        return None;
    }
    let dims = broadcast_dims(&broadcast_dims(&c.dims, &x.dims)?, &y.dims)?;
    let (ci, xi, yi) = (
        broadcast_index(&dims, &c.dims),
        broadcast_index(&dims, &x.dims),
        broadcast_index(&dims, &y.dims),
    );
    let mut bytes = Vec::with_capacity(xi.len() * x.esize());
    for k in 0..ci.len() {
        let pick = if c.bytes[ci[k]] != 0 {
            x.elem(xi[k])
        } else {
            y.elem(yi[k])
        };
        bytes.extend_from_slice(pick);
    }
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes: bytes.into(),
    })
}

/// ReduceMax / ReduceMin over `axes` (normalised, empty: all).
pub fn reduce(op: &str, x: &Val, axes: &[usize], keepdims: bool) -> Option<Val> {
    let r = x.dims.len();
    let axes: Vec<usize> = if axes.is_empty() {
        (0..r).collect()
    } else {
        axes.to_vec()
    };
    if axes.iter().any(|&a| a >= r) || x.dims.iter().any(|&d| d <= 0) {
        return None;
    }
    let out_dims: Vec<i64> = (0..r)
        .map(|i| if axes.contains(&i) { 1 } else { x.dims[i] })
        .collect();
    let out_strides = strides(&out_dims);
    let in_strides = strides(&x.dims);
    let n = out_dims.iter().product::<i64>() as usize;
    // The output element each input element folds into.
    let target = |flat: usize| -> usize {
        (0..r)
            .map(|i| {
                let idx = flat / in_strides[i] % x.dims[i] as usize;
                if axes.contains(&i) {
                    0
                } else {
                    idx * out_strides[i]
                }
            })
            .sum()
    };
    let max = op == "ReduceMax";
    let better = |p: f64, q: f64| if max { p > q } else { p < q };
    let folded = match nums(x)? {
        Nums::F(v) => {
            if v.iter().any(|f| f.is_nan()) {
                return None;
            }
            let mut acc: Vec<Option<f64>> = vec![None; n];
            for (i, &f) in v.iter().enumerate() {
                let t = &mut acc[target(i)];
                if t.is_none_or(|c| better(f, c)) {
                    *t = Some(f);
                }
            }
            Nums::F(acc.into_iter().collect::<Option<_>>()?)
        }
        Nums::I(v) => {
            let mut acc: Vec<Option<i64>> = vec![None; n];
            for (i, &k) in v.iter().enumerate() {
                let t = &mut acc[target(i)];
                if t.is_none_or(|c| if max { k > c } else { k < c }) {
                    *t = Some(k);
                }
            }
            Nums::I(acc.into_iter().collect::<Option<_>>()?)
        }
    };
    let dims = if keepdims {
        out_dims
    } else {
        (0..r)
            .filter(|i| !axes.contains(i))
            .map(|i| x.dims[i])
            .collect()
    };
    encode(x.dtype, dims, folded)
}
