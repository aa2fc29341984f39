//! Loading a model with tract: decode, parse, fix the input facts, optimize,
//! plan; and running the plan. Every tract failure becomes a
//! [`VerifyError`] naming the model, with tract's error chain condensed.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::{bail, Context};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::inputs::{DeclDim, InputDecl, Plan};
use super::VerifyError;

/// Where a model comes from, with the label errors and notes call it by.
pub(crate) enum Source<'a> {
    Bytes { label: String, bytes: &'a [u8] },
    Path { label: String, path: &'a Path },
}

impl Source<'_> {
    fn label(&self) -> &str {
        match self {
            Source::Bytes { label, .. } | Source::Path { label, .. } => label,
        }
    }
}

/// A model tract has parsed but not yet typed: its declared inputs and
/// outputs, read from the ONNX graph.
pub(crate) struct ParsedModel {
    pub(crate) label: String,
    pub(crate) proto: pb::ModelProto,
    pub(crate) dir: Option<String>,
    model: InferenceModel,
    /// The graph inputs that are not initializers, in tract's input order.
    pub(crate) inputs: Vec<InputDecl>,
    /// The graph outputs' names, in order.
    pub(crate) outputs: Vec<String>,
    /// Seconds tract took to parse it.
    parse_s: f64,
}

/// A model ready to run on the plan's inputs.
pub(crate) struct LoadedModel {
    pub(crate) label: String,
    runnable: Arc<TypedSimplePlan>,
    /// For each of this model's inputs, its index in the plan.
    input_order: Vec<usize>,
    /// Each input's element type in this model (an f64 reference takes
    /// f64 where the plan draws f32 or f16).
    input_types: Vec<DatumType>,
    /// Seconds spent parsing, typing, optimizing and planning it.
    pub(crate) load_s: f64,
    /// Seconds spent running it, all samples.
    pub(crate) run_s: std::cell::Cell<f64>,
}

/// Condenses an error chain into one line: each distinct cause once,
/// whitespace collapsed, joined by ": ".
pub(crate) fn condense(e: &TractError) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let mut s = text.split_whitespace().collect::<Vec<_>>().join(" ");
        const MAX: usize = 600;
        if s.len() > MAX {
            let mut cut = MAX;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    let mut message = parts.join(": ");
    if let Some(op) = unimplemented_op(&message) {
        message.push_str(&format!(" (tract does not implement the operator '{op}')"));
    }
    message
}

/// The operator named in tract's `Unimplemented(Op)`, if any.
fn unimplemented_op(message: &str) -> Option<&str> {
    let start = message.find("Unimplemented(")? + "Unimplemented(".len();
    let len = message[start..].find(')')?;
    Some(&message[start..start + len])
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("tract panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("tract panicked: {s}")
    } else {
        "tract panicked".to_string()
    }
}

thread_local! {
    /// Set while tract runs under [`guarded`]: its panics are reported as
    /// npuopt's own errors, so the panic hook stays silent for them.
    static QUIET_PANICS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that says nothing for panics inside
/// [`guarded`] on this thread and defers to the previous hook otherwise.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning both an error and a panic into a condensed message.
/// tract's panic text never reaches stderr: the message is returned.
fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T, String> {
    install_quiet_hook();
    let was = QUIET_PANICS.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(was));
    match result {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(condense(&e)),
        Err(payload) => Err(panic_message(payload)),
    }
}

/// Decodes and parses a model, and reads its declared inputs and outputs.
/// A decoded model: its label, protobuf and external-data folder.
pub(crate) type Decoded = (String, pb::ModelProto, Option<String>);

/// Decodes a model's protobuf.
pub(crate) fn decode(source: &Source<'_>) -> Result<Decoded, VerifyError> {
    let label = source.label().to_string();
    let load_err = |message: String| VerifyError::Load {
        model: label.clone(),
        message,
    };
    let onnx = tract_onnx::onnx();
    let (proto, dir) = match source {
        Source::Bytes { bytes, .. } => {
            let proto = guarded(|| {
                let mut reader: &[u8] = bytes;
                onnx.proto_model_for_read(&mut reader)
                    .context("decoding the ONNX protobuf")
            })
            .map_err(load_err)?;
            (proto, None)
        }
        Source::Path { path, .. } => {
            let proto = guarded(|| {
                onnx.proto_model_for_path(path)
                    .with_context(|| format!("reading {}", path.display()))
            })
            .map_err(load_err)?;
            let dir = path.parent().map(|d| {
                if d.as_os_str().is_empty() {
                    ".".to_string()
                } else {
                    d.to_string_lossy().into_owned()
                }
            });
            (proto, dir)
        }
    };
    Ok((label, proto, dir))
}

/// Parses a decoded model (possibly rewritten: an f64 reference, extra
/// outputs) and reads its declared inputs and outputs.
pub(crate) fn from_proto(
    label: String,
    proto: pb::ModelProto,
    dir: Option<String>,
) -> Result<ParsedModel, VerifyError> {
    let load_err = |message: String| VerifyError::Load {
        model: label.clone(),
        message,
    };
    let onnx = tract_onnx::onnx();
    let start = std::time::Instant::now();
    let model = parse_proto(&onnx, &proto, dir.as_deref()).map_err(load_err)?;
    let parse_s = start.elapsed().as_secs_f64();

    let graph = proto.graph.as_ref().ok_or_else(|| VerifyError::Load {
        model: label.clone(),
        message: "the model has no graph".into(),
    })?;
    let mut inputs = Vec::new();
    for (ix, outlet) in model
        .input_outlets()
        .map_err(|e| load_err(condense(&e)))?
        .iter()
        .enumerate()
    {
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(ix).map_err(|e| load_err(condense(&e)))?;
        let dt = fact.datum_type.concretize().ok_or_else(|| {
            VerifyError::Inputs(format!("{label}: input '{name}' has no element type"))
        })?;
        let declared = graph.input.iter().find(|i| i.name == name);
        let dims = declared
            .and_then(|i| i.r#type.as_ref())
            .and_then(|t| t.value.as_ref())
            .and_then(|v| {
                let pb::type_proto::Value::TensorType(t) = v;
                t.shape.as_ref()
            })
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                            DeclDim::Fixed(*v as usize)
                        }
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                            DeclDim::Symbolic(p.clone())
                        }
                        _ => DeclDim::Symbolic(String::new()),
                    })
                    .collect()
            });
        inputs.push(InputDecl { name, dt, dims });
    }
    let outputs = graph
        .output
        .iter()
        .map(|o| o.name.clone())
        .collect::<Vec<_>>();
    let tract_outputs = model
        .output_outlets()
        .map_err(|e| load_err(condense(&e)))?
        .len();
    if tract_outputs != outputs.len() {
        return Err(load_err(format!(
            "the graph declares {} outputs but tract sees {tract_outputs}",
            outputs.len()
        )));
    }
    Ok(ParsedModel {
        label,
        proto,
        dir,
        model,
        inputs,
        outputs,
        parse_s,
    })
}

fn parse_proto(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    dir: Option<&str>,
) -> Result<InferenceModel, String> {
    guarded(|| {
        let parsed = onnx.parse(proto, dir)?;
        if !parsed.unresolved_inputs.is_empty() {
            bail!(
                "these values are used but never defined: {}",
                parsed.unresolved_inputs.join(", ")
            );
        }
        Ok(parsed.model)
    })
}

/// Fixes every input's fact, substitutes the symbols, optimizes and plans.
/// When tract's own graph optimizer fails on a model it could type (its
/// `ChangeAxes` declutter mis-wires some convs with a 1-channel input, and
/// LeViT's reshapes), the model is planned as typed, unoptimized: slower,
/// but the same arithmetic, and the note says so.
fn build_runnable(
    mut model: InferenceModel,
    inputs: &[InputDecl],
    plan: &Plan,
    symbols: &HashMap<String, usize>,
) -> Result<(Arc<TypedSimplePlan>, Option<String>), String> {
    guarded(|| {
        for (ix, decl) in inputs.iter().enumerate() {
            let spec = plan
                .spec(&decl.name)
                .context("input missing from the plan")?;
            model.set_input_fact(ix, InferenceFact::dt_shape(decl.dt, spec.shape.iter()))?;
        }
        let subs: HashMap<Symbol, TDim> = symbols
            .iter()
            .filter_map(|(name, v)| Some((model.symbols.get(name)?, TDim::Val(*v as i64))))
            .collect();
        if !subs.is_empty() {
            model.set_symbols(&subs)?;
        }
        let typed = model.into_typed()?;
        let candidate = typed.clone();
        match guarded(move || candidate.into_optimized()) {
            Ok(optimized) => Ok((optimized.into_runnable()?, None)),
            Err(why) => Ok((
                typed.into_runnable()?,
                Some(format!(
                    "tract's graph optimizer failed ({why}); run unoptimized"
                )),
            )),
        }
    })
}

impl LoadedModel {
    /// Types, optimizes and plans a parsed model for the plan's concrete
    /// inputs. If tract rejects the model's `value_info` shape hints (which
    /// may name symbols no input pins down) the model is parsed again
    /// without them, with a note.
    pub(crate) fn build(
        parsed: ParsedModel,
        plan: &Plan,
        symbols: &HashMap<String, usize>,
        notes: &mut Vec<String>,
    ) -> Result<LoadedModel, VerifyError> {
        let ParsedModel {
            label,
            proto,
            dir,
            model,
            inputs,
            outputs: _,
            parse_s,
        } = parsed;
        let start = std::time::Instant::now();
        let runnable = match build_runnable(model, &inputs, plan, symbols) {
            Ok((r, note)) => {
                notes.extend(note.map(|n| format!("{label}: {n}")));
                r
            }
            Err(first) => {
                let has_value_info = proto
                    .graph
                    .as_ref()
                    .is_some_and(|g| !g.value_info.is_empty());
                let retry = if has_value_info {
                    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
                    parse_proto(&onnx, &proto, dir.as_deref())
                        .and_then(|m| build_runnable(m, &inputs, plan, symbols))
                        .ok()
                } else {
                    None
                };
                match retry {
                    Some((r, note)) => {
                        notes.extend(note.map(|n| format!("{label}: {n}")));
                        notes.push(format!(
                            "{label}: tract rejected the value_info shape hints ({first}); \
                             loaded without them"
                        ));
                        r
                    }
                    None => {
                        return Err(VerifyError::Load {
                            model: label,
                            message: first,
                        })
                    }
                }
            }
        };
        let input_order = inputs
            .iter()
            .map(|d| plan.index_of(&d.name).expect("plan covers every input"))
            .collect();
        let input_types = inputs.iter().map(|d| d.dt).collect();
        Ok(LoadedModel {
            label,
            runnable,
            input_order,
            input_types,
            load_s: parse_s + start.elapsed().as_secs_f64(),
            run_s: std::cell::Cell::new(0.0),
        })
    }

    /// Runs the model once on the plan's tensors (in plan order).
    pub(crate) fn run(&self, tensors: &[TValue]) -> Result<Vec<Tensor>, VerifyError> {
        let mut inputs: TVec<TValue> = TVec::new();
        for (&i, &dt) in self.input_order.iter().zip(&self.input_types) {
            let t = &tensors[i];
            if t.datum_type() == dt {
                inputs.push(t.clone());
            } else {
                let cast = t.cast_to_dt(dt).map_err(|e| VerifyError::Run {
                    model: self.label.clone(),
                    message: condense(&e),
                })?;
                inputs.push(cast.into_owned().into_tvalue());
            }
        }
        let start = std::time::Instant::now();
        let outputs =
            guarded(|| self.runnable.run(inputs)).map_err(|message| VerifyError::Run {
                model: self.label.clone(),
                message,
            })?;
        self.run_s
            .set(self.run_s.get() + start.elapsed().as_secs_f64());
        outputs
            .into_iter()
            .map(|v| v.into_tensor().into_plain_ram())
            .collect::<TractResult<Vec<_>>>()
            .map_err(|e| VerifyError::Run {
                model: self.label.clone(),
                message: condense(&e),
            })
    }
}
