//! Choosing concrete input shapes and drawing the input tensors.

use std::collections::{BTreeMap, HashMap};

use tract_onnx::prelude::*;

use super::load::Declared;
use super::rng::SplitMix64;
use super::VerifyError;

/// One dim of a declared input shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum DeclDim {
    Fixed(usize),
    /// A `dim_param` (the empty string when the dim is unnamed or unknown).
    Symbolic(String),
}

/// A graph input as the model declares it.
#[derive(Clone, Debug)]
pub(crate) struct InputDecl {
    pub(crate) name: String,
    pub(crate) dt: DatumType,
    /// `None` when the model declares no shape (not even a rank).
    pub(crate) dims: Option<Vec<DeclDim>>,
}

/// What an integer input is used for, where the graph shows it: its draws
/// stay valid, so tract never indexes out of range or divides by zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum IntRole {
    /// Indices into an axis of this size (`Gather`, `GatherElements`,
    /// `ScatterElements`): drawn from `[0, size)`.
    Index(usize),
    /// A divisor (`Div`, `Mod`): zero is never drawn.
    Divisor,
}

/// The roles of the graph inputs the reference uses as indices or
/// divisors. An index's axis size comes from the indexed tensor: an
/// initializer, or an input of the plan.
fn int_roles(
    reference: &Declared,
    specs: &[InputSpec],
    notes: &mut Vec<String>,
) -> HashMap<String, IntRole> {
    let mut roles = HashMap::new();
    let Some(g) = reference.proto.graph.as_ref() else {
        return roles;
    };
    let is_int_input = |name: &str| specs.iter().any(|s| s.name == name && s.dt.is_integer());
    let dims_of = |name: &str| -> Option<Vec<usize>> {
        if let Some(t) = g.initializer.iter().find(|t| t.name == name) {
            return Some(t.dims.iter().map(|&d| d.max(0) as usize).collect());
        }
        specs
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.shape.clone())
    };
    for n in &g.node {
        if !n.domain.is_empty() {
            continue;
        }
        let port = |i: usize| n.input.get(i).filter(|s| is_int_input(s)).cloned();
        match n.op_type.as_str() {
            "Gather" | "GatherElements" | "ScatterElements" => {
                let Some(idx) = port(1) else { continue };
                let axis = n
                    .attribute
                    .iter()
                    .find(|a| a.name == "axis")
                    .map_or(0, |a| a.i);
                let Some(dims) = n.input.first().and_then(|d| dims_of(d)) else {
                    continue;
                };
                let axis = if axis < 0 {
                    axis + dims.len() as i64
                } else {
                    axis
                };
                if let Some(&size) = dims.get(axis.max(0) as usize).filter(|&&d| d > 0) {
                    let size = match roles.get(&idx) {
                        Some(IntRole::Index(other)) => size.min(*other),
                        _ => size,
                    };
                    roles.insert(idx.clone(), IntRole::Index(size));
                }
            }
            "Div" | "Mod" => {
                if let Some(d) = port(1) {
                    roles.entry(d).or_insert(IntRole::Divisor);
                }
            }
            _ => {}
        }
    }
    let mut named: Vec<String> = roles
        .iter()
        .map(|(n, r)| match r {
            IntRole::Index(size) => format!("'{n}' in [0, {size}) (indices)"),
            IntRole::Divisor => format!("'{n}' non-zero (a divisor)"),
        })
        .collect();
    named.sort();
    if !named.is_empty() {
        notes.push(format!("integer inputs drawn valid: {}", named.join(", ")));
    }
    roles
}

/// The concrete type and shape an input is verified with.
#[derive(Clone, Debug)]
pub(crate) struct InputSpec {
    pub(crate) name: String,
    pub(crate) dt: DatumType,
    pub(crate) shape: Vec<usize>,
}

/// The inputs both models receive (in the reference's order), and each
/// model's symbol values implied by them.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) inputs: Vec<InputSpec>,
    /// Integer inputs whose valid values the graph shows, by name.
    pub(crate) roles: HashMap<String, IntRole>,
    pub(crate) reference_symbols: HashMap<String, usize>,
    pub(crate) candidate_symbols: HashMap<String, usize>,
}

impl Plan {
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|s| s.name == name)
    }
}

fn supported(dt: DatumType) -> bool {
    use DatumType::*;
    matches!(
        dt,
        F16 | F32 | F64 | I8 | I16 | I32 | I64 | U8 | U16 | U32 | U64 | Bool
    )
}

fn dt_name(dt: DatumType) -> String {
    format!("{dt:?}").to_lowercase()
}

fn fmt_decl(dims: &Option<Vec<DeclDim>>) -> String {
    match dims {
        None => "(no shape)".into(),
        Some(dims) => {
            let parts: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    DeclDim::Fixed(v) => v.to_string(),
                    DeclDim::Symbolic(s) if s.is_empty() => "?".into(),
                    DeclDim::Symbolic(s) => s.clone(),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

fn fmt_shape(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Is a symbolic dim a batch dim, defaulting to 1? The first dim of an input
/// of rank ≥ 2, or any dim whose name says "batch".
fn is_batch_dim(pos: usize, rank: usize, name: &str) -> bool {
    (pos == 0 && rank >= 2) || name.to_ascii_lowercase().contains("batch")
}

/// Records `symbol = value`; a symbol bound to two values is an error.
fn bind(
    symbols: &mut HashMap<String, usize>,
    origin: &mut HashMap<String, String>,
    symbol: &str,
    value: usize,
    here: String,
) -> Result<(), VerifyError> {
    if symbol.is_empty() {
        return Ok(());
    }
    match symbols.get(symbol) {
        Some(&v) if v != value => Err(VerifyError::Inputs(format!(
            "symbolic dim '{symbol}' would be {v} ({}) and {value} ({here}); \
             give consistent --input-shape values",
            origin[symbol]
        ))),
        Some(_) => Ok(()),
        None => {
            symbols.insert(symbol.to_string(), value);
            origin.insert(symbol.to_string(), here);
            Ok(())
        }
    }
}

/// Chooses every input's concrete shape from the reference's declarations
/// and the overrides, and checks the candidate declares the same inputs.
pub(crate) fn plan(
    reference: &Declared,
    candidate: &Declared,
    overrides: &[(String, Vec<usize>)],
    notes: &mut Vec<String>,
) -> Result<Plan, VerifyError> {
    let names: Vec<&str> = reference.inputs.iter().map(|d| d.name.as_str()).collect();

    // Overrides must name inputs, once each.
    let mut by_name: BTreeMap<&str, &Vec<usize>> = BTreeMap::new();
    for (name, shape) in overrides {
        if !names.contains(&name.as_str()) {
            return Err(VerifyError::Inputs(format!(
                "--input-shape names '{name}', which is not an input of the {}; its inputs are: {}",
                reference.label,
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        if by_name.insert(name, shape).is_some() {
            return Err(VerifyError::Inputs(format!(
                "--input-shape gives input '{name}' more than once"
            )));
        }
    }

    // Both models must take the same inputs, of the same types.
    for c in &candidate.inputs {
        match reference.inputs.iter().find(|r| r.name == c.name) {
            None => {
                return Err(VerifyError::Inputs(format!(
                    "the {} has an input '{}' the {} does not have",
                    candidate.label, c.name, reference.label
                )))
            }
            Some(r) if r.dt != c.dt => {
                return Err(VerifyError::Inputs(format!(
                    "input '{}' is {} in the {} but {} in the {}",
                    c.name,
                    dt_name(r.dt),
                    reference.label,
                    dt_name(c.dt),
                    candidate.label
                )))
            }
            Some(_) => {}
        }
    }
    for r in &reference.inputs {
        if !candidate.inputs.iter().any(|c| c.name == r.name) {
            return Err(VerifyError::Inputs(format!(
                "the {} has an input '{}' the {} does not have",
                reference.label, r.name, candidate.label
            )));
        }
        if !supported(r.dt) {
            return Err(VerifyError::Inputs(format!(
                "input '{}' is {}, for which no random values can be drawn \
                 (supported: floats, integers, bool)",
                r.name,
                dt_name(r.dt)
            )));
        }
    }

    // Overridden inputs first: they bind the symbols they mention.
    let mut symbols = HashMap::new();
    let mut origin = HashMap::new();
    for decl in &reference.inputs {
        let Some(shape) = by_name.get(decl.name.as_str()) else {
            continue;
        };
        if let Some(dims) = &decl.dims {
            if dims.len() != shape.len() {
                return Err(VerifyError::Inputs(format!(
                    "--input-shape {}={} has rank {} but the input is declared {} (rank {})",
                    decl.name,
                    fmt_shape(shape),
                    shape.len(),
                    fmt_decl(&decl.dims),
                    dims.len()
                )));
            }
            for (pos, (d, &v)) in dims.iter().zip(shape.iter()).enumerate() {
                match d {
                    DeclDim::Fixed(f) if *f != v => notes.push(format!(
                        "--input-shape {}={} replaces the declared fixed dim {pos} ({f} → {v})",
                        decl.name,
                        fmt_shape(shape)
                    )),
                    DeclDim::Fixed(_) => {}
                    DeclDim::Symbolic(s) => bind(
                        &mut symbols,
                        &mut origin,
                        s,
                        v,
                        format!("--input-shape {}", decl.name),
                    )?,
                }
            }
        }
    }

    // Then the others: fixed dims, known symbols, batch dims; the rest is an
    // error listing every unresolved dim.
    let mut specs = Vec::new();
    let mut unresolved = Vec::new();
    for decl in &reference.inputs {
        if let Some(shape) = by_name.get(decl.name.as_str()) {
            specs.push(InputSpec {
                name: decl.name.clone(),
                dt: decl.dt,
                shape: shape.to_vec(),
            });
            continue;
        }
        let Some(dims) = &decl.dims else {
            unresolved.push(format!(
                "input '{}' declares no shape; give it with --input-shape {}=D0,D1,…",
                decl.name, decl.name
            ));
            continue;
        };
        let mut shape = Vec::with_capacity(dims.len());
        let mut missing = Vec::new();
        for (pos, d) in dims.iter().enumerate() {
            match d {
                DeclDim::Fixed(v) => shape.push(Some(*v)),
                DeclDim::Symbolic(s) if !s.is_empty() && symbols.contains_key(s) => {
                    shape.push(Some(symbols[s]))
                }
                DeclDim::Symbolic(s) if is_batch_dim(pos, dims.len(), s) => {
                    let what = if s.is_empty() {
                        format!("unnamed batch dim {pos}")
                    } else {
                        format!("symbolic batch dim '{s}'")
                    };
                    notes.push(format!(
                        "{what} of '{}' set to 1 (override with --input-shape {}=…)",
                        decl.name, decl.name
                    ));
                    bind(
                        &mut symbols,
                        &mut origin,
                        s,
                        1,
                        format!("batch dim of '{}'", decl.name),
                    )?;
                    shape.push(Some(1));
                }
                DeclDim::Symbolic(s) => {
                    missing.push(if s.is_empty() {
                        format!("dim {pos} (unnamed)")
                    } else {
                        format!("dim {pos} ('{s}')")
                    });
                    shape.push(None);
                }
            }
        }
        if missing.is_empty() {
            specs.push(InputSpec {
                name: decl.name.clone(),
                dt: decl.dt,
                shape: shape.into_iter().map(|d| d.unwrap_or(0)).collect(),
            });
        } else {
            let example: Vec<String> = dims
                .iter()
                .zip(&shape)
                .map(|(d, v)| match (v, d) {
                    (Some(v), _) => v.to_string(),
                    (None, DeclDim::Symbolic(s)) if !s.is_empty() => s.clone(),
                    (None, _) => "N".into(),
                })
                .collect();
            unresolved.push(format!(
                "input '{}' (declared {}) has symbolic {} with no value; \
                 give its shape with --input-shape {}={}",
                decl.name,
                fmt_decl(&decl.dims),
                missing.join(" and "),
                decl.name,
                example.join(",")
            ));
        }
    }
    if !unresolved.is_empty() {
        return Err(VerifyError::Inputs(unresolved.join("; ")));
    }

    // The candidate's declarations must accept the chosen shapes; its
    // symbols take the values those shapes imply.
    let mut cand_symbols = HashMap::new();
    let mut cand_origin = HashMap::new();
    for c in &candidate.inputs {
        let spec = specs
            .iter()
            .find(|s| s.name == c.name)
            .expect("checked above");
        let Some(dims) = &c.dims else { continue };
        let overridden = by_name.contains_key(c.name.as_str());
        if dims.len() != spec.shape.len() {
            return Err(VerifyError::Inputs(format!(
                "input '{}' is declared {} in the {} but has shape [{}] in the {}",
                c.name,
                fmt_decl(&c.dims),
                candidate.label,
                fmt_shape(&spec.shape),
                reference.label
            )));
        }
        for (d, &v) in dims.iter().zip(&spec.shape) {
            match d {
                DeclDim::Fixed(f) if *f != v && !overridden => {
                    return Err(VerifyError::Inputs(format!(
                        "input '{}' is declared {} in the {} but {} in the {}",
                        c.name,
                        fmt_decl(&c.dims),
                        candidate.label,
                        fmt_decl(
                            &reference
                                .inputs
                                .iter()
                                .find(|r| r.name == c.name)
                                .and_then(|r| r.dims.clone())
                        ),
                        reference.label
                    )))
                }
                DeclDim::Fixed(_) => {}
                DeclDim::Symbolic(s) => bind(
                    &mut cand_symbols,
                    &mut cand_origin,
                    s,
                    v,
                    format!("input '{}' of the {}", c.name, candidate.label),
                )?,
            }
        }
    }

    if !specs.is_empty() {
        let shapes: Vec<String> = specs
            .iter()
            .map(|s| format!("'{}' {}[{}]", s.name, dt_name(s.dt), fmt_shape(&s.shape)))
            .collect();
        notes.push(format!("inputs: {}", shapes.join(", ")));
    }
    let roles = int_roles(reference, &specs, notes);
    Ok(Plan {
        inputs: specs,
        roles,
        reference_symbols: symbols,
        candidate_symbols: cand_symbols,
    })
}

/// Draws the input tensors, sample after sample, from one seeded stream.
pub(crate) struct Generator {
    rng: SplitMix64,
    range: (f64, f64),
}

fn make<T: Datum + Copy>(shape: &[usize], f: impl FnMut() -> T) -> Result<TValue, VerifyError> {
    let len: usize = shape.iter().product();
    let data: Vec<T> = std::iter::repeat_with(f).take(len).collect();
    Tensor::from_shape(shape, &data)
        .map(|t| t.into_tvalue())
        .map_err(|e| VerifyError::Inputs(super::load::condense(&e)))
}

impl Generator {
    /// `range` is `[lo, hi)` for integer inputs.
    pub(crate) fn new(seed: u64, range: (f64, f64)) -> Self {
        Generator {
            rng: SplitMix64::new(seed),
            range,
        }
    }

    /// The integers in `[lo, hi)`: `ceil(lo) ..= ceil(hi) - 1`.
    fn int_bounds(&self) -> (f64, f64) {
        let (lo, hi) = self.range;
        (lo.ceil(), hi.ceil() - 1.0)
    }

    fn int(&mut self) -> f64 {
        let (a, b) = self.int_bounds();
        self.int_in(a, b)
    }

    fn int_in(&mut self, a: f64, b: f64) -> f64 {
        (a + (self.rng.uniform() * (b - a + 1.0)).floor()).min(b)
    }

    /// An integer for an input with a role: an index in its axis, or a
    /// non-zero divisor (the range without 0; `[1, 1]` if it holds only 0).
    fn int_for(&mut self, role: Option<IntRole>) -> f64 {
        match role {
            None => self.int(),
            Some(IntRole::Index(size)) => self.int_in(0.0, size as f64 - 1.0),
            Some(IntRole::Divisor) => {
                let (a, b) = self.int_bounds();
                if a == 0.0 && b == 0.0 {
                    return 1.0;
                }
                loop {
                    let v = self.int_in(a, b);
                    if v != 0.0 {
                        return v;
                    }
                }
            }
        }
    }

    /// One tensor per input of the plan, in plan order. Floats are standard
    /// normal; integers uniform in the range (saturating at the type's
    /// bounds); booleans fair coin flips.
    pub(crate) fn draw(&mut self, plan: &Plan) -> Result<Vec<TValue>, VerifyError> {
        let (a, b) = self.int_bounds();
        if a > b {
            if let Some(spec) = plan.inputs.iter().find(|s| s.dt.is_integer()) {
                return Err(VerifyError::Inputs(format!(
                    "input '{}' is {} but the input range [{}, {}) holds no integer",
                    spec.name,
                    dt_name(spec.dt),
                    self.range.0,
                    self.range.1
                )));
            }
        }
        plan.inputs
            .iter()
            .map(|spec| {
                let shape = &spec.shape;
                let role = plan.roles.get(&spec.name).copied();
                // `as` from f64 to an integer saturates, which clamps
                // out-of-range draws to the type's bounds.
                match spec.dt {
                    DatumType::F16 => make(shape, || f16::from_f64(self.rng.normal())),
                    DatumType::F32 => make(shape, || self.rng.normal() as f32),
                    DatumType::F64 => make(shape, || self.rng.normal()),
                    DatumType::I8 => make(shape, || self.int_for(role) as i8),
                    DatumType::I16 => make(shape, || self.int_for(role) as i16),
                    DatumType::I32 => make(shape, || self.int_for(role) as i32),
                    DatumType::I64 => make(shape, || self.int_for(role) as i64),
                    DatumType::U8 => make(shape, || self.int_for(role) as u8),
                    DatumType::U16 => make(shape, || self.int_for(role) as u16),
                    DatumType::U32 => make(shape, || self.int_for(role) as u32),
                    DatumType::U64 => make(shape, || self.int_for(role) as u64),
                    DatumType::Bool => make(shape, || self.rng.bool()),
                    dt => Err(VerifyError::Inputs(format!(
                        "input '{}' is {}, for which no random values can be drawn",
                        spec.name,
                        dt_name(dt)
                    ))),
                }
            })
            .collect()
    }

    /// The same tensors with every float element moved by about one
    /// rounding step (`x · (1 ± eps)`, the sign drawn from the stream);
    /// other types unchanged. The input model's change on these estimates
    /// its noise floor when there is no f64 reference.
    pub(crate) fn perturb(
        &mut self,
        tensors: &[TValue],
        eps: f64,
    ) -> Result<Vec<TValue>, VerifyError> {
        let err = |e: TractError| VerifyError::Inputs(super::load::condense(&e));
        tensors
            .iter()
            .map(|t| {
                let dt = t.datum_type();
                if !dt.is_float() {
                    return Ok(t.clone());
                }
                let wide = t.cast_to_dt(DatumType::F64).map_err(err)?;
                let values: Vec<f64> = wide
                    .try_as_plain_ram()
                    .map_err(err)?
                    .as_slice::<f64>()
                    .map_err(err)?
                    .iter()
                    .map(|v| v * (1.0 + if self.rng.bool() { eps } else { -eps }))
                    .collect();
                let shaken = Tensor::from_shape(t.shape(), &values).map_err(err)?;
                Ok(shaken
                    .cast_to_dt(dt)
                    .map_err(err)?
                    .into_owned()
                    .into_tvalue())
            })
            .collect()
    }
}
