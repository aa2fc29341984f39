//! Loading a model with tract: decode, parse, fix the input facts, type,
//! plan; and running the plan. Every tract failure becomes a
//! [`VerifyError`] naming the model, with tract's error chain condensed.
//!
//! A model is loaded from its source each time it is needed and dropped
//! after its runs, so only one model's parameters are in memory at a time,
//! and only once: the top-level initializers are moved out of the decoded
//! protobuf before tract parses the graph, and each becomes a tract
//! constant (in f64 for the reference) as its protobuf bytes are freed.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use anyhow::{bail, Context};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::ops::konst::Const;

use super::inputs::{DeclDim, InputDecl, Plan};
use super::precision;
use super::rng::SplitMix64;
use super::VerifyError;

/// Where a model comes from, with the label errors and notes call it by.
pub(crate) enum Source<'a> {
    /// An encoded model, its external data (if any) in `dir`.
    Bytes {
        label: String,
        bytes: &'a [u8],
        dir: Option<&'a Path>,
    },
    Path {
        label: String,
        path: &'a Path,
    },
}

impl Source<'_> {
    pub(crate) fn label(&self) -> &str {
        match self {
            Source::Bytes { label, .. } | Source::Path { label, .. } => label,
        }
    }
}

/// What a model declares, read from its protobuf: its inputs (graph
/// inputs that are not initializers, in order) and outputs.
pub(crate) struct Declared {
    pub(crate) label: String,
    /// The decoded model, with the outputs a comparison adds.
    pub(crate) proto: pb::ModelProto,
    pub(crate) inputs: Vec<InputDecl>,
    /// The graph outputs' names, in order.
    pub(crate) outputs: Vec<String>,
}

/// The form a model is loaded in.
pub(crate) enum Form<'a> {
    /// As it is, at its own precision.
    Native,
    /// In f64 (see [`precision`]); with `perturb`, every float parameter
    /// not in `unchanged` rounded once more at that epsilon.
    F64 {
        perturb: Option<f64>,
        unchanged: &'a HashSet<String>,
    },
}

/// A model to load: where it comes from, the values a comparison adds as
/// outputs, its symbols' values.
pub(crate) struct Spec<'a> {
    pub(crate) source: &'a Source<'a>,
    pub(crate) extra_outputs: &'a [String],
    /// The values of its symbolic dims the plan implies.
    pub(crate) symbols: &'a HashMap<String, usize>,
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

/// A decoded model: its protobuf and external-data folder.
pub(crate) type Decoded = (pb::ModelProto, Option<String>);

/// Decodes a model's protobuf; errors name the model `label`.
pub(crate) fn decode(source: &Source<'_>, label: &str) -> Result<Decoded, VerifyError> {
    let load_err = |message: String| VerifyError::Load {
        model: label.to_string(),
        message,
    };
    match source {
        // Decoded from the caller's bytes as they are (tract's reader would
        // copy them first).
        Source::Bytes { bytes, dir, .. } => {
            let proto = guarded(|| {
                <pb::ModelProto as prost::Message>::decode(*bytes)
                    .context("decoding the ONNX protobuf")
            })
            .map_err(load_err)?;
            Ok((proto, dir.map(|d| d.to_string_lossy().into_owned())))
        }
        Source::Path { path, .. } => {
            let proto = guarded(|| {
                tract_onnx::onnx()
                    .proto_model_for_path(path)
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
            Ok((proto, dir))
        }
    }
}

/// Reads what a decoded model declares: the inputs tract will take (graph
/// inputs that are not initializers, in order) and the outputs.
pub(crate) fn declared(label: String, proto: pb::ModelProto) -> Result<Declared, VerifyError> {
    let graph = proto.graph.as_ref().ok_or_else(|| VerifyError::Load {
        model: label.clone(),
        message: "the model has no graph".into(),
    })?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| &*t.name).collect();
    let mut inputs = Vec::new();
    for input in graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&*i.name))
    {
        let name = input.name.clone();
        let Some(pb::type_proto::Value::TensorType(t)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(VerifyError::Load {
                model: label,
                message: format!("graph input '{name}' has no tensor type"),
            });
        };
        let dt = pb::tensor_proto::DataType::try_from(t.elem_type)
            .ok()
            .and_then(|d| DatumType::try_from(d).ok())
            .ok_or_else(|| {
                VerifyError::Inputs(format!("{label}: input '{name}' has no element type"))
            })?;
        let dims = t.shape.as_ref().map(|s| {
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
    let outputs = graph.output.iter().map(|o| o.name.clone()).collect();
    Ok(Declared {
        label,
        proto,
        inputs,
        outputs,
    })
}

/// Frees the values of the top-level initializers, keeping their names,
/// types and shapes: what is declared without what is computed.
pub(crate) fn strip_initializer_values(proto: &mut pb::ModelProto) {
    for t in proto
        .graph
        .as_mut()
        .map_or(&mut [][..], |g| &mut g.initializer[..])
    {
        t.raw_data = Vec::new();
        t.float_data = Vec::new();
        t.int32_data = Vec::new();
        t.int64_data = Vec::new();
        t.double_data = Vec::new();
        t.uint64_data = Vec::new();
        t.string_data = Vec::new();
    }
}

/// Moves the top-level initializers out of the graph (all but those that
/// are also graph outputs, which tract reads from the graph itself).
fn take_initializers(proto: &mut pb::ModelProto) -> Vec<pb::TensorProto> {
    let Some(g) = proto.graph.as_mut() else {
        return Vec::new();
    };
    let outputs: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
    let (kept, taken) = std::mem::take(&mut g.initializer)
        .into_iter()
        .partition(|t| outputs.contains(&t.name));
    g.initializer = kept;
    taken
}

/// Parses a graph whose top-level initializers were taken out: the values
/// they define are tract sources until [`attach_initializers`]. Any other
/// value used but never defined is an error.
fn parse_proto(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    dir: Option<&str>,
    taken: &[pb::TensorProto],
) -> Result<InferenceModel, String> {
    guarded(|| {
        let parsed = onnx.parse(proto, dir)?;
        let names: HashSet<&str> = taken.iter().map(|t| &*t.name).collect();
        let undefined: Vec<&str> = parsed
            .unresolved_inputs
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !names.contains(s))
            .collect();
        if !undefined.is_empty() {
            bail!(
                "these values are used but never defined: {}",
                undefined.join(", ")
            );
        }
        Ok(parsed.model)
    })
}

/// Turns the sources standing for taken initializers into constants, one
/// initializer at a time, each freed as its constant is made. `convert`
/// makes the constant's tensor.
fn attach_initializers(
    model: &mut InferenceModel,
    taken: Vec<pb::TensorProto>,
    mut convert: impl FnMut(&pb::TensorProto) -> TractResult<Tensor>,
) -> TractResult<()> {
    let sources: HashMap<String, OutletId> = model
        .input_outlets()?
        .iter()
        .map(|o| (model.node(o.node).name.clone(), *o))
        .collect();
    let mut attached = HashSet::new();
    for t in taken {
        // An initializer nothing reads is not in the graph tract built.
        let Some(&outlet) = sources.get(&t.name) else {
            continue;
        };
        let value = Arc::new(convert(&t).with_context(|| format!("initializer '{}'", t.name))?);
        drop(t);
        let fact = TypedFact::try_from(value.clone())?;
        model.node_mut(outlet.node).op = Box::new(Const::new(value)?);
        model.set_outlet_fact(outlet, fact.into())?;
        attached.insert(outlet);
    }
    let inputs: Vec<OutletId> = model
        .input_outlets()?
        .iter()
        .filter(|o| !attached.contains(*o))
        .copied()
        .collect();
    model.set_input_outlets(&inputs)?;
    Ok(())
}

/// Fixes every input's fact, substitutes the symbols, types and plans:
/// with `optimize`, through tract's graph optimizer — and when that fails
/// on a model tract could type (its `ChangeAxes` declutter mis-wires some
/// convs with a 1-channel input, and LeViT's reshapes), as typed, with a
/// note: slower, but the same arithmetic.
///
/// The f64 reference is planned as typed: for its one run per sample the
/// optimizer costs more than it saves, and its repacked weights would be a
/// second f64 copy of the parameters, the largest allocation of a
/// verification. The models at their own precision are optimized: their
/// runs are faster so, and they round as tract deploys them.
fn build_runnable(
    mut model: InferenceModel,
    plan: &Plan,
    symbols: &HashMap<String, usize>,
    optimize: bool,
) -> Result<(Planned, Option<String>), String> {
    guarded(|| {
        let mut types = Vec::new();
        let mut order = Vec::new();
        for (ix, outlet) in model.input_outlets()?.to_vec().iter().enumerate() {
            let name = model.node(outlet.node).name.clone();
            let dt = model
                .input_fact(ix)?
                .datum_type
                .concretize()
                .with_context(|| format!("input '{name}' has no element type"))?;
            let spec_ix = plan
                .index_of(&name)
                .with_context(|| format!("input '{name}' is missing from the plan"))?;
            let spec = &plan.inputs[spec_ix];
            model.set_input_fact(ix, InferenceFact::dt_shape(dt, spec.shape.iter()))?;
            types.push(dt);
            order.push(spec_ix);
        }
        let subs: HashMap<Symbol, TDim> = symbols
            .iter()
            .filter_map(|(name, v)| Some((model.symbols.get(name)?, TDim::Val(*v as i64))))
            .collect();
        if !subs.is_empty() {
            model.set_symbols(&subs)?;
        }
        let typed = model.into_typed()?;
        if !optimize {
            return Ok(((typed.into_runnable()?, types, order), None));
        }
        // The clone shares the typed model's constants.
        let candidate = typed.clone();
        match guarded(move || candidate.into_optimized()) {
            Ok(optimized) => Ok(((optimized.into_runnable()?, types, order), None)),
            Err(why) => Ok((
                (typed.into_runnable()?, types, order),
                Some(format!(
                    "tract's graph optimizer failed ({why}); run unoptimized"
                )),
            )),
        }
    })
}

/// A plan, and for each of its inputs the element type and the index of
/// the plan input it takes.
type Planned = (Arc<TypedSimplePlan>, Vec<DatumType>, Vec<usize>);

impl LoadedModel {
    /// Loads the model `spec` names in `form`, typed and planned for the
    /// plan's concrete inputs; `label` names it in errors and notes. If
    /// tract rejects the model's `value_info` shape hints (which may name
    /// symbols no input pins down) the model is loaded again without them,
    /// with a note.
    pub(crate) fn load(
        spec: &Spec<'_>,
        label: String,
        form: &Form<'_>,
        plan: &Plan,
        notes: &mut Vec<String>,
    ) -> Result<LoadedModel, VerifyError> {
        let symbols = spec.symbols;
        let start = std::time::Instant::now();
        let load_err = |message: String| VerifyError::Load {
            model: label.clone(),
            message,
        };
        let has_value_info = std::cell::Cell::new(false);
        let attempt = |ignore_value_info: bool| -> Result<_, VerifyError> {
            let (mut proto, dir) = decode(spec.source, &label)?;
            if let Some(g) = proto.graph.as_mut() {
                has_value_info.set(!g.value_info.is_empty());
                g.output
                    .extend(spec.extra_outputs.iter().map(|name| pb::ValueInfoProto {
                        name: name.clone(),
                        ..Default::default()
                    }));
            }
            let taken = take_initializers(&mut proto);
            let onnx = tract_onnx::onnx().with_ignore_value_info(ignore_value_info);
            let dir = dir.as_deref();
            // The f64 form: the graph rewritten, its `Constant` values
            // rounded once more from a stream of their own; the operator
            // settings among the initializers stay as they are.
            let mut constants_rng = SplitMix64::new(0x636f6e7374);
            let keep = match form {
                Form::Native => None,
                Form::F64 { perturb, .. } => Some(
                    guarded(|| {
                        let perturb = perturb.map(|eps| (&mut constants_rng, eps));
                        precision::to_f64(&mut proto, dir, perturb)
                    })
                    .map_err(load_err)?,
                ),
            };
            let model = parse_proto(&onnx, &proto, dir, &taken);
            drop(proto);
            let mut model = model.map_err(load_err)?;
            let mut rng = SplitMix64::new(0x6e6f697365);
            guarded(|| {
                attach_initializers(&mut model, taken, |t| match (form, &keep) {
                    (Form::F64 { perturb, unchanged }, Some(keep)) if !keep.contains(&t.name) => {
                        let perturb = perturb
                            .filter(|_| !unchanged.contains(&t.name))
                            .map(|eps| (&mut rng, eps));
                        precision::tensor_f64(t, &onnx, dir, perturb)
                    }
                    _ => tract_onnx::tensor::load_tensor(&*onnx.provider, t, dir),
                })
            })
            .map_err(load_err)?;
            Ok(model)
        };
        let optimize = matches!(form, Form::Native);
        let first = attempt(false)?;
        let ((runnable, input_types, input_order), note) =
            match build_runnable(first, plan, symbols, optimize) {
                Ok(r) => r,
                Err(first) if has_value_info.get() => match attempt(true)
                    .ok()
                    .and_then(|m| build_runnable(m, plan, symbols, optimize).ok())
                {
                    Some(r) => {
                        notes.push(format!(
                            "{label}: tract rejected the value_info shape hints ({first}); \
                             loaded without them"
                        ));
                        r
                    }
                    None => return Err(load_err(first)),
                },
                Err(first) => return Err(load_err(first)),
            };
        notes.extend(note.map(|n| format!("{label}: {n}")));
        Ok(LoadedModel {
            label,
            runnable,
            input_order,
            input_types,
            load_s: start.elapsed().as_secs_f64(),
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
