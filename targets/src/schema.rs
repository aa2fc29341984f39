//! The target description: what the hardware computes fast, what it pads,
//! what it cannot run. One TOML file per target; see `targets/builtin/` for
//! documented examples and `/work/shared/design/TARGETS.md` for the sources.
//!
//! Every table rejects unknown fields, so a typo is an error naming the file
//! and the field rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TargetError};

/// A whole target description.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub target: TargetInfo,
    pub compute: Compute,
    pub align: Align,
    pub conv: ConvRules,
    pub depthwise: DepthwiseRules,
    pub group: GroupRules,
    pub eltwise: EltwiseRules,
    pub act: ActRules,
    pub pool: PoolRules,
    pub concat: ConcatRules,
    pub movement: MovementRules,
    pub memory: Memory,
    pub fallback: Fallback,
    /// `[cost]`: how the cost model's decisions are taken (optional: the
    /// defaults apply when the file has no such table).
    #[serde(default)]
    pub cost: CostRules,
    /// How the vendor's toolchain quantizes to int8; `None` when the file
    /// does not say (then nothing is assumed: no quantization pass joins
    /// the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

/// `[target]`: identity and provenance.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    pub name: String,
    pub clock_mhz: f64,
    #[serde(default = "one")]
    pub cores: u32,
    /// Where the numbers come from (documents, compilers, measurements).
    pub source: String,
    /// Which numbers are assumptions rather than published figures.
    #[serde(default)]
    pub assumptions: Vec<String>,
}

fn one() -> u32 {
    1
}

/// `[compute]`: the MAC array.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    /// Peak MACs per cycle of one core.
    pub macs_per_cycle: u32,
    /// Bytes per activation/weight element (1 for int8).
    #[serde(default = "one")]
    pub bytes_per_elem: u32,
}

/// `[align]`: channel granularities the hardware rounds up to.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Align {
    /// Input channels of a dense conv are processed in blocks of this many.
    pub cin: u32,
    /// Output channels (and depthwise channels) are processed in blocks of
    /// this many.
    pub cout: u32,
    /// A concat whose channel offsets are all multiples of this can be
    /// written in place.
    pub concat_offset: u32,
}

/// `[conv]`: dense convolution (and Gemm / MatMul as 1×1 convs).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConvRules {
    /// Efficiency by square kernel size: `{ 1 = 0.89, 3 = 1.0, other = 0.5 }`.
    pub kernel_eff: KernelEff,
    /// Efficiency factor of a conv with stride ≥ 2 (a named formula).
    #[serde(default = "Formula::unit")]
    pub stride2_eff: Formula,
    /// Efficiency factor of a dilated conv (a named formula).
    #[serde(default = "Formula::unit")]
    pub dilation_eff: Formula,
    /// Output-stage floor: cycles per output element.
    pub out_cycles_per_elem: f64,
    /// Largest stride the NPU runs; larger ones fall back to the CPU.
    #[serde(default)]
    pub max_stride: Option<u32>,
}

/// `[depthwise]`: convs with one group per input channel.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DepthwiseRules {
    /// Fraction of the peak MAC rate a depthwise conv reaches.
    pub frac_of_peak: f64,
    /// The kernel area k² is processed in steps of this many taps.
    pub kstep: u32,
    /// Cycles multiplier for stride ≥ 2.
    pub stride2_penalty: f64,
    /// Square kernel sizes the NPU runs; others fall back to the CPU.
    pub kernels: Vec<u32>,
    /// Largest channel multiplier (Cout / Cin) run as depthwise; larger
    /// multipliers are treated as a group conv.
    pub max_multiplier: u32,
}

/// How grouped (non-depthwise) convs are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupMode {
    /// One conv, each group padded to `align_per_group` channels.
    Native,
    /// Split into G dense convs plus a concat.
    Split,
    /// Not run by the NPU: CPU fallback.
    Cpu,
}

/// `[group]`: grouped convs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRules {
    pub mode: GroupMode,
    /// Channel granularity per group in `native` mode.
    pub align_per_group: u32,
}

/// `[eltwise]`: binary element-wise ops.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EltwiseRules {
    /// Cycles per output element of Add / Sub / Sum.
    pub add_cpe: f64,
    /// Cycles per output element of Mul / Div.
    pub mul_cpe: f64,
    /// An Add whose input is a conv's only output is fused into that conv.
    pub fused_add: bool,
}

/// `[act]`: activations.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActRules {
    /// Activations the NPU runs (ONNX op types); others fall back.
    pub supported: Vec<String>,
    /// Activations fused for free into the producing conv / eltwise op.
    pub fused: Vec<String>,
    /// Cycles per element of a piecewise-linear activation (Relu, Clip,
    /// LeakyRelu, PRelu) that is not fused.
    pub relu_cpe: f64,
    /// Cycles per element of the other supported activations (a lookup
    /// table or a dedicated unit: Sigmoid, HardSwish, Tanh …).
    pub lut_cpe: f64,
}

/// `[pool]`: MaxPool, AveragePool, GlobalAveragePool.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRules {
    /// Cycles per output element.
    pub out_cpe: f64,
    /// Cycles per input element (the floor of a global pool).
    pub in_cpe: f64,
}

/// `[concat]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatRules {
    /// Cycles per copied element.
    pub copy_cpe: f64,
    /// A channel concat with every offset a multiple of
    /// `align.concat_offset` costs nothing: the producers write in place.
    pub in_place_when_aligned: bool,
}

/// `[movement]`: Split, Slice, Pad, Transpose; reshapes are free.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MovementRules {
    /// Cycles per element of a copy (Split, Slice, Pad).
    pub copy_cpe: f64,
    /// Cycles per element of a Transpose.
    pub transpose_cpe: f64,
    /// Cycles per element of a Reshape / Flatten (0: a free view).
    #[serde(default)]
    pub reshape_cpe: f64,
    /// Op types of the opaque kind (not modelled by npuopt, e.g. Resize,
    /// Softmax) that the NPU runs, at `other_cpe` per output element.
    #[serde(default)]
    pub other_supported: Vec<String>,
    #[serde(default)]
    pub other_cpe: f64,
}

/// `[memory]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// On-chip memory bandwidth, GB/s (activations, and weights unless
    /// `weights_in_dram`).
    pub sram_gbps: f64,
    /// Off-chip bandwidth, GB/s; used for weights when `weights_in_dram`.
    pub dram_gbps: f64,
    #[serde(default)]
    pub weights_in_dram: bool,
    /// The DMA fetches a layer's weights while the layer before it runs
    /// (double-buffered weights, as Vela schedules them for Ethos-U): a
    /// weight transfer costs only what the previous layer's memory slack
    /// (its cycles minus its own transfers) cannot hide. False: every
    /// layer waits for its own weights.
    #[serde(default)]
    pub weight_prefetch: bool,
}

/// `[quantization]`: the int8 scheme of the vendor's toolchain, with its
/// sources — what decides whether range equalization can help.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// Conv (and depthwise conv) weights: one scale per tensor, or one per
    /// output channel.
    pub conv_weights: Granularity,
    /// Fully-connected (Gemm / MatMul) weights.
    pub fc_weights: Granularity,
    /// Activations (almost always one scale per tensor).
    pub activations: Granularity,
    /// Whether the toolchain equalizes channel ranges by itself.
    pub equalization: VendorEqualization,
    /// Where these facts come from.
    pub source: String,
}

/// One scale for a whole tensor, or one per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    PerTensor,
    PerChannel,
}

/// Does the vendor's quantizer apply cross-layer equalization itself?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VendorEqualization {
    /// No such step.
    None,
    /// Available, off unless the user asks (e.g. QNN's `--algorithms cle`).
    Option,
    /// Always applied.
    Default,
}

impl Quantization {
    /// Equalizing ranges helps where conv weights share one scale across
    /// output channels, and the vendor does not already equalize by
    /// default. Measured (bench/quantize_equalized.py, ONNX Runtime QDQ
    /// int8, per-tensor activations): with per-tensor weights it raised the
    /// output SQNR of RepVGG-A0 by 6.5 dB and MobileOne-S0 by 1.8 dB; with
    /// per-channel weights it *lowered* RepVGG-A0's by 2.7 dB (scaling the
    /// second layer's input channels widens its per-channel ranges), so
    /// per-tensor activations alone are not a reason to run it.
    pub fn equalization_helps(&self) -> bool {
        self.conv_weights == Granularity::PerTensor
            && self.equalization != VendorEqualization::Default
    }
}

/// `[cost]`: how much the estimate must say before a rewrite is taken.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostRules {
    /// A rewrite that grows executed MACs or weight bytes is applied only
    /// when the estimated cycles fall by more than this fraction of the
    /// model's (default 0.02): an estimate a fraction of a percent lower is
    /// inside the cost model's own error, and no reason to run a heavier
    /// model.
    #[serde(default = "default_heavier_margin")]
    pub heavier_margin: f64,
}

fn default_heavier_margin() -> f64 {
    0.02
}

impl Default for CostRules {
    fn default() -> Self {
        CostRules {
            heavier_margin: default_heavier_margin(),
        }
    }
}

/// `[fallback]`: the cost of an op the NPU cannot run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// Host CPU throughput, GMAC/s (one MAC or one element op per unit).
    pub cpu_gmacs: f64,
    /// NPU ↔ CPU transfer bandwidth for the op's inputs and outputs, GB/s.
    pub transfer_gbps: f64,
}

/// Kernel-size efficiency table: explicit square sizes and `other`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, f64>", into = "BTreeMap<String, f64>")]
pub struct KernelEff {
    pub by_size: BTreeMap<u32, f64>,
    pub other: f64,
}

impl KernelEff {
    /// Efficiency of a kernel; non-square kernels use `other`.
    pub fn of(&self, kernel: &[i64]) -> f64 {
        match kernel {
            [k, rest @ ..] if rest.iter().all(|r| r == k) => u32::try_from(*k)
                .ok()
                .and_then(|k| self.by_size.get(&k).copied())
                .unwrap_or(self.other),
            _ => self.other,
        }
    }
}

impl TryFrom<BTreeMap<String, f64>> for KernelEff {
    type Error = String;
    fn try_from(m: BTreeMap<String, f64>) -> Result<Self, String> {
        let mut by_size = BTreeMap::new();
        let mut other = None;
        for (k, v) in m {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!(
                    "efficiency of kernel `{k}` must be in (0, 1], found {v}"
                ));
            }
            if k == "other" {
                other = Some(v);
            } else {
                let size: u32 = k.parse().map_err(|_| {
                    format!("expected a kernel size (an integer) or `other`, found key `{k}`")
                })?;
                by_size.insert(size, v);
            }
        }
        let other = other.ok_or("missing key `other` (efficiency of any other kernel)")?;
        Ok(KernelEff { by_size, other })
    }
}

impl From<KernelEff> for BTreeMap<String, f64> {
    fn from(k: KernelEff) -> Self {
        let mut m: BTreeMap<String, f64> =
            k.by_size.iter().map(|(s, v)| (s.to_string(), *v)).collect();
        m.insert("other".into(), k.other);
        m
    }
}

/// A small fixed set of named efficiency formulas (not an expression
/// language): a constant such as `"1.0"`; `"cout/(cout+N)"` (Axera's
/// stride-2 rule, N an integer); `"k/((k-1)*d+1)"` (Axera's dilation rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Formula {
    Const(f64),
    CoutOverCoutPlus(u32),
    DilationSpread,
}

/// What a formula is evaluated on.
#[derive(Clone, Copy, Debug)]
pub struct FormulaArgs {
    pub cout: i64,
    /// Largest kernel extent.
    pub k: i64,
    /// Largest dilation.
    pub d: i64,
}

impl Formula {
    fn unit() -> Formula {
        Formula::Const(1.0)
    }

    pub fn eval(&self, a: FormulaArgs) -> f64 {
        match self {
            Formula::Const(c) => *c,
            Formula::CoutOverCoutPlus(n) => a.cout as f64 / (a.cout as f64 + *n as f64),
            Formula::DilationSpread => a.k as f64 / (((a.k - 1) * a.d + 1) as f64).max(1.0),
        }
    }
}

impl TryFrom<String> for Formula {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(c) = t.parse::<f64>() {
            if c > 0.0 && c <= 1.0 {
                return Ok(Formula::Const(c));
            }
            return Err(format!(
                "a constant efficiency must be in (0, 1], found {c}"
            ));
        }
        if let Some(n) = t
            .strip_prefix("cout/(cout+")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
        {
            return Ok(Formula::CoutOverCoutPlus(n));
        }
        if t == "k/((k-1)*d+1)" {
            return Ok(Formula::DilationSpread);
        }
        Err(format!(
            "unknown formula `{s}`; expected a number in (0, 1], \"cout/(cout+N)\" or \"k/((k-1)*d+1)\""
        ))
    }
}

impl From<Formula> for String {
    fn from(f: Formula) -> String {
        match f {
            Formula::Const(c) => format!("{c:?}"),
            Formula::CoutOverCoutPlus(n) => format!("cout/(cout+{n})"),
            Formula::DilationSpread => "k/((k-1)*d+1)".into(),
        }
    }
}

/// The built-in targets, embedded at build time.
const BUILTINS: &[(&str, &str)] = &[
    (
        "ethos-u55-256",
        include_str!("../builtin/ethos-u55-256.toml"),
    ),
    ("edgetpu", include_str!("../builtin/edgetpu.toml")),
    ("hexagon-htp", include_str!("../builtin/hexagon-htp.toml")),
    ("axera-m55h", include_str!("../builtin/axera-m55h.toml")),
    ("cpu-generic", include_str!("../builtin/cpu-generic.toml")),
];

/// The embedded TOML of a built-in target, comments and all.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of the built-in targets, in listing order.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

impl Target {
    /// Parses a description; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Target> {
        let t: Target = toml::from_str(text).map_err(|e| schema_error(&e, text, file))?;
        t.check(file, text)?;
        Ok(t)
    }

    pub fn from_file(path: &Path) -> Result<Target> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Target::from_toml(&text, &path.display().to_string())
    }

    /// A built-in target by name.
    pub fn builtin(name: &str) -> Result<Target> {
        let (n, text) = BUILTINS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            TargetError::UnknownTarget {
                name: name.to_string(),
                known: builtin_names().iter().map(|s| s.to_string()).collect(),
            }
        })?;
        Target::from_toml(text, &format!("<builtin {n}>"))
    }

    /// A path when `spec` ends with `.toml` or names an existing file;
    /// otherwise a built-in name.
    pub fn resolve(spec: &str) -> Result<Target> {
        let p = Path::new(spec);
        if spec.ends_with(".toml") || p.is_file() {
            Target::from_file(p)
        } else {
            Target::builtin(spec)
        }
    }

    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The description as TOML (without the comments of the file it came
    /// from).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a target always serializes")
    }

    /// Peak MACs per cycle over all cores.
    pub fn peak_macs_per_cycle(&self) -> f64 {
        self.compute.macs_per_cycle as f64 * self.target.cores.max(1) as f64
    }

    /// Checks values serde cannot: positive rates, non-zero alignments.
    fn check(&self, file: &str, text: &str) -> Result<()> {
        let bad = |field: &str, message: String| {
            let (line, column) = locate(text, field);
            Err(TargetError::Schema {
                file: file.to_string(),
                line,
                column,
                field: Some(field.to_string()),
                message,
            })
        };
        let positive: [(&str, f64); 5] = [
            ("target.clock_mhz", self.target.clock_mhz),
            ("compute.macs_per_cycle", self.compute.macs_per_cycle as f64),
            ("depthwise.frac_of_peak", self.depthwise.frac_of_peak),
            ("fallback.cpu_gmacs", self.fallback.cpu_gmacs),
            ("fallback.transfer_gbps", self.fallback.transfer_gbps),
        ];
        for (f, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                return bad(f, format!("expected a positive number, found {v}"));
            }
        }
        let aligns = [
            ("align.cin", self.align.cin),
            ("align.cout", self.align.cout),
            ("align.concat_offset", self.align.concat_offset),
            ("depthwise.kstep", self.depthwise.kstep),
            ("group.align_per_group", self.group.align_per_group),
            ("target.cores", self.target.cores),
        ];
        for (f, v) in aligns {
            if v == 0 {
                return bad(f, "expected an integer ≥ 1, found 0".into());
            }
        }
        let m = self.cost.heavier_margin;
        if !(0.0..1.0).contains(&m) {
            return bad(
                "cost.heavier_margin",
                format!("expected a fraction in [0, 1), found {m}"),
            );
        }
        if self.memory.sram_gbps < 0.0 || self.memory.dram_gbps < 0.0 {
            return bad("memory", "bandwidths must be ≥ 0 (0: not modelled)".into());
        }
        if self.memory.weights_in_dram && self.memory.dram_gbps <= 0.0 {
            return bad(
                "memory.dram_gbps",
                "expected a positive bandwidth when weights_in_dram = true".into(),
            );
        }
        Ok(())
    }
}

/// Turns toml's error (message + byte span) into one that names the file,
/// the line and column, and the dotted field path.
fn schema_error(e: &toml::de::Error, text: &str, file: &str) -> TargetError {
    let message = e.message().trim().to_string();
    let (line, column, field) = match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column, field_at(text, span, &message))
        }
        None => (0, 0, missing_field(&message)),
    };
    TargetError::Schema {
        file: file.to_string(),
        line,
        column,
        field,
        message,
    }
}

/// Line and column of `table.key` in `text` (0, 0 when not found).
fn locate(text: &str, field: &str) -> (usize, usize) {
    let (table, key) = field.split_once('.').unwrap_or((field, ""));
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if key.is_empty() && current == table {
                return (i + 1, 1);
            }
        } else if current == table && t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            return (i + 1, l.len() - t.len() + 1);
        }
    }
    (0, 0)
}

/// The dotted key path at `span`: the last `[table]` header before it, the
/// key of its line, and for a missing field, the field's name.
fn field_at(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<String> {
    let start = span.start.min(text.len());
    if start == 0 && span.end >= text.trim_end().len() {
        // The whole document: a missing top-level table.
        return missing_field(message);
    }
    let mut table: Option<String> = None;
    let mut key: Option<String> = None;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    for l in text[..line_start].lines() {
        let t = l.trim();
        if t.starts_with('[') {
            table = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
        }
    }
    let line = text[line_start..].lines().next().unwrap_or("");
    let t = line.trim();
    if t.starts_with('[') {
        table = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    } else if t.starts_with('#') {
        // a comment: no key here
    } else if let Some((k, _)) = t.split_once('=') {
        key = Some(k.trim().trim_matches('"').to_string());
        // A key inside an inline table on this line: `kernel_eff = { 1 = .., x = .. }`.
        let spanned = text.get(span.clone()).unwrap_or("").trim();
        let col = start - line_start;
        let eq = line.find('=').unwrap_or(0);
        if col > eq && line[eq..].contains('{') && !spanned.is_empty() && !spanned.contains('{') {
            if let Some(inner) = line[col..].split('=').next() {
                let inner = inner.trim().trim_matches('"');
                if !inner.is_empty() && !inner.contains(['{', '}', ',']) {
                    key = Some(format!("{}.{inner}", key.unwrap_or_default()));
                }
            }
        }
    }
    let missing = missing_field(message);
    let parts: Vec<String> = [table, key, missing].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}
