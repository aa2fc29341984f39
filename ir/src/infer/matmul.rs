//! Matrix products: MatMul (with batch broadcasting and 1-D promotion),
//! Gemm, Einsum, and their integer and quantised forms.

use std::collections::BTreeMap;

use super::dims::{broadcast, unify};
use super::{Ctx, Rule};
use crate::dtype::DType;
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("MatMul", matmul),
    ("MatMulInteger", matmul_integer),
    ("QLinearMatMul", qlinear_matmul),
    ("Gemm", gemm),
    ("Einsum", einsum),
];

/// numpy.matmul's shape: batch dims broadcast; a 1-D operand is promoted
/// to a matrix and its added dim removed from the result.
pub(crate) fn matmul_shape(a: &[Dim], b: &[Dim]) -> Option<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![Dim::Known(1), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), Dim::Known(1)]
    } else {
        b.to_vec()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let mut out = broadcast(&[&a2[..ra - 2], &b2[..rb - 2]])?;
    if a.len() > 1 {
        out.push(a2[ra - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[rb - 1].clone());
    }
    Some(out)
}

fn matmul_with(cx: &mut Ctx, a: usize, b: usize, dtype: Option<DType>) {
    let Some(dtype) = dtype.or_else(|| cx.dtype(a)) else {
        return;
    };
    match cx
        .shape(a)
        .zip(cx.shape(b))
        .and_then(|(a, b)| matmul_shape(a, b))
    {
        Some(s) => cx.set_shape(0, dtype, s),
        None => cx.set_dtype(0, dtype),
    }
}

fn matmul(cx: &mut Ctx) {
    matmul_with(cx, 0, 1, None);
}

fn matmul_integer(cx: &mut Ctx) {
    matmul_with(cx, 0, 1, Some(DType::INT32));
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)`:
/// the output has y_zero_point's type.
fn qlinear_matmul(cx: &mut Ctx) {
    let dtype = cx.dtype(7);
    matmul_with(cx, 0, 3, dtype);
}

fn gemm(cx: &mut Ctx) {
    let (ta, tb) = match cx.n.op() {
        crate::op::Op::Gemm(g) => (g.trans_a, g.trans_b),
        _ => (
            cx.int_attr("transA").unwrap_or(0) != 0,
            cx.int_attr("transB").unwrap_or(0) != 0,
        ),
    };
    let (Some(a), Some(b), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    if a.len() != 2 || b.len() != 2 {
        return;
    }
    let m = if ta { &a[1] } else { &a[0] };
    let n = if tb { &b[0] } else { &b[1] };
    cx.set_shape(0, dtype, vec![m.clone(), n.clone()]);
}

/// One operand of an equation: its letters, and where `...` stands.
struct Term {
    letters: Vec<char>,
    ellipsis: Option<usize>,
}

fn parse_term(s: &str) -> Option<Term> {
    let s = s.trim();
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("...") {
            if ellipsis.replace(letters.len()).is_some() {
                return None;
            }
            rest = r;
            continue;
        }
        let c = rest.chars().next()?;
        if !c.is_ascii_alphabetic() {
            return None;
        }
        letters.push(c);
        rest = &rest[1..];
    }
    Some(Term { letters, ellipsis })
}

/// Einsum's shape: each letter's dim from the operands, `...` dims
/// broadcast; the output is the explicit right-hand side, or (implicit)
/// `...` then the letters used once, in alphabetical order.
fn einsum(cx: &mut Ctx) {
    let Some(eq) = cx.string_attr("equation") else {
        return;
    };
    let Some(dtype) = cx.dtype(0) else { return };
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let Some(terms) = lhs.split(',').map(parse_term).collect::<Option<Vec<_>>>() else {
        return;
    };
    if terms.len() != cx.n_inputs() {
        return;
    }
    let mut letter: BTreeMap<char, Dim> = BTreeMap::new();
    let mut count: BTreeMap<char, usize> = BTreeMap::new();
    let mut ellipsis_dims: Vec<Vec<Dim>> = Vec::new();
    for (i, t) in terms.iter().enumerate() {
        let Some(s) = cx.shape(i) else {
            return cx.set_dtype(0, dtype);
        };
        let n_ell = match t.ellipsis {
            Some(_) if s.len() >= t.letters.len() => s.len() - t.letters.len(),
            None if s.len() == t.letters.len() => 0,
            _ => return,
        };
        let at = t.ellipsis.unwrap_or(t.letters.len());
        for (j, c) in t.letters.iter().enumerate() {
            let d = &s[if j < at { j } else { j + n_ell }];
            let merged = match letter.get(c) {
                Some(old) => unify(old, d),
                None => d.clone(),
            };
            letter.insert(*c, merged);
            *count.entry(*c).or_default() += 1;
        }
        if t.ellipsis.is_some() {
            ellipsis_dims.push(s[at..at + n_ell].to_vec());
        }
    }
    let ell_refs: Vec<&[Dim]> = ellipsis_dims.iter().map(Vec::as_slice).collect();
    let ell = if ell_refs.is_empty() {
        Vec::new()
    } else {
        match broadcast(&ell_refs) {
            Some(e) => e,
            None => return,
        }
    };
    let out_term = match rhs {
        Some(r) => match parse_term(r) {
            Some(t) => t,
            None => return,
        },
        None => Term {
            letters: count
                .iter()
                .filter(|(_, n)| **n == 1)
                .map(|(c, _)| *c)
                .collect(),
            ellipsis: (!ell.is_empty() || terms.iter().any(|t| t.ellipsis.is_some())).then_some(0),
        },
    };
    let mut shape = Vec::new();
    for (j, c) in out_term.letters.iter().enumerate() {
        if out_term.ellipsis == Some(j) {
            shape.extend(ell.iter().cloned());
        }
        let Some(d) = letter.get(c) else { return };
        shape.push(d.clone());
    }
    if out_term.ellipsis == Some(out_term.letters.len()) {
        shape.extend(ell.iter().cloned());
    }
    cx.set_shape(0, dtype, shape);
}
