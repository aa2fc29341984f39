//! Pinning graph inputs to concrete shapes (what `onnxsim
//! --overwrite-input-shape` does): the CLI's `--input-shape
//! NAME=1,3,640,640`.
//!
//! The pinned inputs declare the new shape; each symbolic dim they had
//! (`batch`, `height`) is bound to its value everywhere — in other inputs
//! using the same name, in the declared outputs and `value_info`, and in
//! every inferred type — and inference runs again, so passes, the cost
//! model and the written model all see concrete shapes. Nothing is changed
//! unless every pin is valid: a pin naming no graph input, of the wrong
//! rank, contradicting a dim the model fixes, or binding one symbol to two
//! values is an error naming it.

use std::collections::BTreeMap;

use crate::error::{IrError, Result};
use crate::graph::Graph;
use crate::proto::tensor_shape_proto::dimension::Value as DimValue;
use crate::proto::type_proto::Value as TypeValue;
use crate::proto::ValueInfoProto;
use crate::shape::{Dim, TensorType};

fn bad(message: String) -> IrError {
    IrError::InputShape(message)
}

/// Pins each named graph input to its dims; returns the symbols bound, by
/// name. Fails — changing nothing — on an invalid pin.
pub fn pin_input_shapes(g: &mut Graph, pins: &[(String, Vec<i64>)]) -> Result<Vec<(String, i64)>> {
    let mut bind: BTreeMap<String, i64> = BTreeMap::new();
    let mut typed = Vec::with_capacity(pins.len());
    for (name, dims) in pins {
        let v = g
            .value_by_name(name)
            .filter(|&v| g.is_fed_input(v))
            .ok_or_else(|| {
                let inputs: Vec<&str> = g
                    .inputs()
                    .filter(|&v| g.is_fed_input(v))
                    .map(|v| g.value(v).name())
                    .collect();
                bad(format!(
                    "no graph input named '{name}' (the inputs are: {})",
                    inputs.join(", ")
                ))
            })?;
        if let Some(d) = dims.iter().find(|d| **d < 0) {
            return Err(bad(format!("input '{name}': dim {d} is negative")));
        }
        let Some(declared) = g.value(v).ty.clone() else {
            return Err(bad(format!(
                "input '{name}' declares no type; its element type is unknown"
            )));
        };
        if let Some(s) = &declared.shape {
            if s.len() != dims.len() {
                return Err(bad(format!(
                    "input '{name}' has rank {} ({declared}); {} dims were given",
                    s.len(),
                    dims.len()
                )));
            }
            for (axis, (d, &given)) in s.iter().zip(dims).enumerate() {
                match d {
                    Dim::Known(k) if *k != given => {
                        return Err(bad(format!(
                            "input '{name}' fixes dim {axis} to {k} ({declared}); {given} was given"
                        )))
                    }
                    Dim::Sym(sym) => {
                        if let Some(sname) = sym.as_name() {
                            match bind.get(sname) {
                                Some(&old) if old != given => {
                                    return Err(bad(format!(
                                        "symbol '{sname}' would be both {old} and {given} \
                                         (input '{name}' dim {axis})"
                                    )))
                                }
                                _ => {
                                    bind.insert(sname.to_string(), given);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        typed.push((v, TensorType::new(declared.dtype, dims)));
    }
    for (v, ty) in typed {
        g.value_mut(v).ty = Some(ty.clone());
        for (id, info) in &mut g.inputs {
            if *id == v {
                info.r#type = crate::export::value_info_proto("", &ty).r#type;
            }
        }
    }
    let lookup = |s: &str| bind.get(s).copied();
    let ids: Vec<_> = g.value_ids().collect();
    for v in ids {
        let Some(ty) = &g.value(v).ty else { continue };
        if !ty.shape.iter().flatten().any(Dim::is_symbolic) {
            continue;
        }
        let shape = ty
            .shape
            .as_ref()
            .map(|s| s.iter().map(|d| d.substitute(&lookup)).collect());
        g.value_mut(v).ty = Some(TensorType {
            dtype: ty.dtype,
            shape,
        });
    }
    let rewrite = |info: &mut ValueInfoProto| {
        let Some(TypeValue::TensorType(t)) = info.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            return;
        };
        for d in t.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if let Some(DimValue::DimParam(p)) = &d.value {
                if let Some(&k) = bind.get(p) {
                    d.value = Some(DimValue::DimValue(k));
                }
            }
        }
    };
    g.generation += 1;
    for (_, info) in g.inputs.iter_mut().chain(g.outputs.iter_mut()) {
        rewrite(info);
    }
    for (_, info) in &mut g.value_info {
        rewrite(info);
    }
    crate::infer::infer_types(g);
    Ok(bind.into_iter().collect())
}
