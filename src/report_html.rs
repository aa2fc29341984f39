//! The HTML form of the `optimize` report (`--report-html FILE`): one
//! self-contained page for a deployment engineer who would rather look than
//! read.
//!
//! The page has no external assets and needs no JavaScript: inline CSS, an
//! inline SVG chart, plain tables. It shows
//!
//! * the model, the target, and whether the result was verified;
//! * totals before → after: nodes, parameters, MACs and, with a target, the
//!   cost model's estimated cycles, latency and utilisation (labelled as
//!   estimates);
//! * a bar chart of estimated cycles per layer before and after, layers
//!   matched by node name (removed and added layers drawn distinctly), capped
//!   at the [`CHART_LAYERS`] costliest with a note on the rest, and every
//!   layer in a collapsed table;
//! * the verification figures per output, or a prominent "NOT verified";
//! * the decisions: every rejected proposal with its reason, then every
//!   applied rewrite grouped by pass (a pass with more than
//!   `OPEN_PASS_ROWS` rewrites starts collapsed; its rows are in the page
//!   all the same).
//!
//! The output is a pure function of the input: no timestamps, no hash-map
//! order, so two runs give the same bytes. Every string that comes from the
//! model (node and output names, notes) is escaped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use npuopt_passes::PipelineReport;
use npuopt_targets::{Estimate, LayerCost};

use crate::inspect::ModelSummary;
use crate::verify::VerifyReport;

/// At most this many layers are drawn in the chart (the costliest).
pub const CHART_LAYERS: usize = 40;

/// Everything the page shows. Estimates are present when a target was given.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// Shown in the title: the input file's name, say.
    pub model_name: &'a str,
    /// The target's name (`ethos-u55-256` or a TOML path), if one was given.
    pub target: Option<&'a str>,
    /// The cost model's estimate of the input model on the target.
    pub estimate_before: Option<&'a Estimate>,
    /// The cost model's estimate of the optimized model on the target.
    pub estimate_after: Option<&'a Estimate>,
    /// `--intent capacity`'s budget in estimated cycles.
    pub capacity_budget: Option<u64>,
    pub pipeline: &'a PipelineReport,
    pub before: &'a ModelSummary,
    pub after: &'a ModelSummary,
    /// `None`: verification was skipped (the page says "NOT verified").
    pub verification: Option<&'a VerifyReport>,
    /// Why verification could not run (`--allow-unverified`): the page
    /// says `NOT VERIFIED: <reason>`.
    pub unverified: Option<&'a str>,
    /// The int8 weight figures of the input and the output.
    pub quantization: Option<&'a crate::quant_view::QuantReport>,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the page to `path` atomically: a temporary file in the same
/// folder, then a rename, so a reader never sees half a report.
pub fn write_html_report(path: impl AsRef<Path>, input: &ReportInput) -> std::io::Result<()> {
    npuopt_ir::export::write_file_atomically(path.as_ref(), render(input).as_bytes())
}

const CSS: &str = r#"
:root { --before: #7f8fa6; --after: #1f77b4; --removed: #d62728; --added: #2ca02c; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1d2330; background: #f6f7f9; margin: 0; padding: 24px 32px 48px; }
main { max-width: 1180px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h1 .target { color: #55607a; font-weight: 500; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d9dde5; }
p.sub { color: #55607a; margin: 0 0 16px; }
.banner { padding: 12px 16px; border-radius: 6px; font-weight: 600; margin: 12px 0; }
.banner.ok { background: #e3f4e6; border: 1px solid #8cc79a; color: #17612b; }
.banner.bad { background: #fde5e5; border: 2px solid #d62728; color: #8e1010; font-size: 18px; }
.banner.warn { background: #fff4d6; border: 1px solid #e0b43c; color: #6b4e00; }
.note { color: #55607a; font-size: 13px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; width: 100%; }
th, td { border: 1px solid #d9dde5; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #eceff4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; word-break: break-all; }
tr.applied td.decision { color: #17612b; font-weight: 600; }
tr.rejected td.decision { color: #8e1010; font-weight: 600; }
tr.removed td { background: #fdf1f1; }
tr.added td { background: #eef8ef; }
.pass-ok { color: #17612b; font-weight: 600; }
.pass-fail { color: #8e1010; font-weight: 700; }
.better { color: #17612b; }
.worse { color: #8e1010; }
.legend { display: flex; gap: 18px; flex-wrap: wrap; margin: 6px 0; font-size: 13px; }
.legend span.sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: middle; }
.chart { background: #fff; border: 1px solid #d9dde5; padding: 8px; }
.chart svg { display: block; width: 100%; height: auto; }
h3 { font-size: 15px; margin: 20px 0 6px; }
details summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
table.decisions { font-size: 13px; }
table.decisions td { padding: 3px 8px; }
table.decisions td:nth-child(2), table.decisions td:nth-child(3), table.decisions td:nth-child(4) { white-space: nowrap; }
table.decisions td.name { max-width: 300px; }
"#;

/// Renders the whole page.
pub fn render(input: &ReportInput) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = match input.target {
        Some(t) => format!("npuopt report: {} on {}", input.model_name, t),
        None => format!("npuopt report: {}", input.model_name),
    };
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(h, "<title>{}</title>", escape(&title));
    let _ = writeln!(h, "<style>{CSS}</style>\n</head>\n<body>\n<main>");
    header(&mut h, input);
    totals(&mut h, input);
    chart(&mut h, input);
    verification(&mut h, input.verification);
    decisions(&mut h, input.pipeline);
    if let Some(q) = input.quantization {
        quantization(&mut h, q);
    }
    let _ = writeln!(
        h,
        "<p class=\"note\" id=\"footer\">Generated by npuopt {}. Cycle and latency figures come \
         from npuopt's analytic cost model: they are estimates for comparing alternatives, not \
         measurements.</p>",
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, input: &ReportInput) {
    let _ = write!(
        h,
        "<h1 id=\"title\">npuopt report: <span class=\"model\">{}</span>",
        escape(input.model_name)
    );
    if let Some(t) = input.target {
        let _ = write!(h, " <span class=\"target\">on {}</span>", escape(t));
    }
    h.push_str("</h1>\n");
    let p = input.pipeline;
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} applied rewrite{}, {} rejected proposal{}, {} pipeline iteration{}; \
         target: {}.</p>",
        p.changes.len(),
        plural(p.changes.len()),
        p.skips.len(),
        plural(p.skips.len()),
        p.iterations,
        plural(p.iterations),
        input
            .target
            .map(escape)
            .unwrap_or_else(|| "none (no cycle estimates)".into())
    );
    match input.verification {
        Some(v) if v.passed => {
            let worst = v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max);
            let _ = writeln!(
                h,
                "<div class=\"banner ok\" id=\"verified\">Verified with tract: {} output{} \
                 match (max abs err {}).</div>",
                v.outputs.len(),
                plural(v.outputs.len()),
                sci(worst)
            );
        }
        Some(_) => h.push_str(
            "<div class=\"banner bad\" id=\"verified\">Verification FAILED: the optimized model \
             does not match the input (see Verification).</div>\n",
        ),
        None => match input.unverified {
            Some(reason) => {
                let _ = writeln!(
                    h,
                    "<div class=\"banner bad\" id=\"verified\">NOT VERIFIED: {}</div>",
                    escape(reason)
                );
            }
            None => h.push_str(
                "<div class=\"banner bad\" id=\"verified\">NOT verified: verification was skipped, \
                 the optimized model was not checked against the input.</div>\n",
            ),
        },
    }
    if p.hit_iteration_cap {
        h.push_str(
            "<div class=\"banner warn\">The pipeline stopped at its iteration cap before a fixed \
             point.</div>\n",
        );
    }
    if p.hit_rewrite_cap {
        h.push_str(
            "<div class=\"banner warn\">The pipeline stopped at the rewrite cap \
             (--max-rewrites).</div>\n",
        );
    }
}

fn totals(h: &mut String, input: &ReportInput) {
    h.push_str("<h2 id=\"totals\">Totals</h2>\n<table class=\"totals\">\n");
    h.push_str(
        "<tr><th>Figure</th><th class=\"num\">Before</th><th class=\"num\">After</th>\
         <th class=\"num\">Change</th></tr>\n",
    );
    let (b, a) = (input.before, input.after);
    row_u64(h, "Nodes", b.nodes as u64, a.nodes as u64);
    row_u64(h, "Parameters", b.parameters, a.parameters);
    row_u64(h, "MACs (useful)", b.macs, a.macs);
    row_u64(h, "MACs (executed)", b.dense_macs, a.dense_macs);
    match (input.estimate_before, input.estimate_after) {
        (Some(eb), Some(ea)) => {
            row_u64(
                h,
                "Executed MACs (estimate, incl. padding)",
                eb.executed_macs,
                ea.executed_macs,
            );
            row_u64(h, "Cycles (estimate)", eb.total_cycles, ea.total_cycles);
            let _ = writeln!(
                h,
                "<tr id=\"latency\"><td>Latency (estimate) at {} MHz</td><td class=\"num\">{:.3} ms\
                 </td><td class=\"num\">{:.3} ms</td><td class=\"num\">{}</td></tr>",
                fmt_f(eb.clock_mhz),
                eb.latency_ms,
                ea.latency_ms,
                change_pct(eb.latency_ms, ea.latency_ms)
            );
            let _ = writeln!(
                h,
                "<tr><td>Utilisation (estimate)</td><td class=\"num\">{:.1}%</td>\
                 <td class=\"num\">{:.1}%</td><td class=\"num\"></td></tr>",
                eb.utilization * 100.0,
                ea.utilization * 100.0
            );
            if let Some(b) = input.capacity_budget {
                let _ = writeln!(
                    h,
                    "<tr id=\"capacity-budget\"><td>Capacity budget (estimate: the input with BN \
                     folded and branches merged)</td><td class=\"num\"></td><td class=\"num\">\
                     {b} cycles</td><td class=\"num\"></td></tr>"
                );
            }
        }
        _ => h.push_str(
            "<tr><td colspan=\"4\" class=\"note\">No target given: no cycle or latency \
             estimates.</td></tr>\n",
        ),
    }
    h.push_str("</table>\n");
    if let (Some(eb), Some(ea)) = (input.estimate_before, input.estimate_after) {
        for (which, e) in [("before", eb), ("after", ea)] {
            if e.unsized_layers == 0 {
                continue;
            }
            let names: Vec<String> = e
                .layers
                .iter()
                .filter_map(|l| {
                    let v = l.missing_shape.as_ref()?;
                    Some(format!("{} (no shape for '{}')", l.name, v))
                })
                .take(10)
                .collect();
            let _ = writeln!(
                h,
                "<div class=\"banner warn\" id=\"unsized-{which}\">{} layer{} {which} could not be \
                 sized ({} of them convs or matrix products): not costed, so the estimate is a lower \
                 bound. {}{}</div>",
                e.unsized_layers,
                plural(e.unsized_layers),
                e.unsized_mac_layers,
                escape(&names.join(", ")),
                if e.unsized_layers > names.len() { ", …" } else { "" }
            );
        }
        let mut symbols: Vec<&String> =
            eb.symbols_at_one.iter().chain(&ea.symbols_at_one).collect();
        symbols.sort();
        symbols.dedup();
        if !symbols.is_empty() {
            let names: Vec<&str> = symbols.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(
                h,
                "<p class=\"note\" id=\"symbols-at-one\">Symbolic dims evaluated at 1 in the \
                 estimates: {} (pin them with --input-shape NAME=D,D,…).</p>",
                escape(&names.join(", "))
            );
        }
    }
}

fn row_u64(h: &mut String, label: &str, before: u64, after: u64) {
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{}</td></tr>",
        label,
        thousands(before),
        thousands(after),
        change_pct(before as f64, after as f64)
    );
}

/// One row of the layer comparison: a layer matched by name across the
/// two estimates.
struct LayerRow<'a> {
    name: &'a str,
    op: &'a str,
    before: Option<&'a LayerCost>,
    after: Option<&'a LayerCost>,
}

impl LayerRow<'_> {
    fn peak(&self) -> u64 {
        self.before
            .map(|l| l.cycles)
            .max(self.after.map(|l| l.cycles))
            .unwrap_or(0)
    }
    fn status(&self) -> &'static str {
        match (self.before, self.after) {
            (Some(_), None) => "removed",
            (None, Some(_)) => "added",
            _ => "kept",
        }
    }
}

/// Matches layers by node name (the k-th layer named N before with the k-th
/// named N after); order: the before layers in their order, then the added
/// ones.
fn match_layers<'a>(before: &'a Estimate, after: &'a Estimate) -> Vec<LayerRow<'a>> {
    let mut after_by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in after.layers.iter().enumerate().rev() {
        after_by_name.entry(l.name.as_str()).or_default().push(i);
    }
    let mut used = vec![false; after.layers.len()];
    let mut rows = Vec::new();
    for l in &before.layers {
        let a = after_by_name
            .get_mut(l.name.as_str())
            .and_then(|v| v.pop())
            .filter(|_| !l.name.is_empty());
        if let Some(i) = a {
            used[i] = true;
        }
        rows.push(LayerRow {
            name: &l.name,
            op: &l.op,
            before: Some(l),
            after: a.map(|i| &after.layers[i]),
        });
    }
    for (i, l) in after.layers.iter().enumerate() {
        if !used[i] {
            rows.push(LayerRow {
                name: &l.name,
                op: &l.op,
                before: None,
                after: Some(l),
            });
        }
    }
    rows
}

fn chart(h: &mut String, input: &ReportInput) {
    h.push_str("<h2 id=\"layers\">Estimated cycles per layer</h2>\n");
    let (Some(eb), Some(ea)) = (input.estimate_before, input.estimate_after) else {
        h.push_str(
            "<p class=\"note\">No target given: pass a target to see the estimated cycles of \
             every layer before and after.</p>\n",
        );
        return;
    };
    let rows = match_layers(eb, ea);
    let mut costly: Vec<&LayerRow> = rows.iter().filter(|r| r.peak() > 0).collect();
    // Stable sort: ties keep graph order, so the output is deterministic.
    costly.sort_by_key(|r| std::cmp::Reverse(r.peak()));
    let shown = &costly[..costly.len().min(CHART_LAYERS)];
    let max = shown.iter().map(|r| r.peak()).max().unwrap_or(1).max(1);

    h.push_str(
        "<div class=\"legend\" id=\"legend\">\
         <span><span class=\"sw\" style=\"background:var(--before)\"></span>before (kept layer)</span>\
         <span><span class=\"sw\" style=\"background:var(--after)\"></span>after (kept layer)</span>\
         <span><span class=\"sw\" style=\"background:var(--removed)\"></span>removed by the optimizer (before only)</span>\
         <span><span class=\"sw\" style=\"background:var(--added)\"></span>added by the optimizer (after only)</span>\
         </div>\n",
    );
    let (label_w, bar_x, bar_w, row_h, top) = (300.0, 310.0, 690.0, 26.0, 8.0);
    let width = 1120.0;
    let height = top * 2.0 + row_h * shown.len() as f64;
    let _ = writeln!(
        h,
        "<div class=\"chart\"><svg id=\"cycles-chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
         aria-label=\"Estimated cycles per layer, before and after\" \
         font-family=\"system-ui, DejaVu Sans, sans-serif\" font-size=\"11\">"
    );
    for (i, r) in shown.iter().enumerate() {
        let y = top + row_h * i as f64;
        let status = r.status();
        let label = display_name(r.name, r.op);
        let short = truncate(&label, 44);
        let _ = writeln!(
            h,
            "<g class=\"layer {status}\" data-layer=\"{}\"><title>{} ({}): {}</title>",
            escape(r.name),
            escape(&label),
            escape(r.op),
            bar_title(r)
        );
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#1d2330\">{}</text>",
            label_w,
            y + 16.0,
            escape(&short)
        );
        let bars: [(Option<&LayerCost>, &str, f64); 2] = [
            (
                r.before,
                if status == "removed" {
                    "var(--removed)"
                } else {
                    "var(--before)"
                },
                y + 3.0,
            ),
            (
                r.after,
                if status == "added" {
                    "var(--added)"
                } else {
                    "var(--after)"
                },
                y + 13.0,
            ),
        ];
        for (which, (l, colour, by)) in bars.iter().enumerate() {
            let kind = if which == 0 { "before" } else { "after" };
            match l {
                Some(l) => {
                    let w = (l.cycles as f64 / max as f64 * bar_w).max(1.0);
                    let _ = writeln!(
                        h,
                        "<rect class=\"bar {kind}\" x=\"{bar_x}\" y=\"{by}\" width=\"{w:.1}\" \
                         height=\"9\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" \
                         fill=\"#55607a\" font-size=\"9.5\">{}</text>",
                        bar_x + w + 4.0,
                        by + 8.0,
                        thousands(l.cycles)
                    );
                }
                None => {
                    let word = if which == 0 { "added" } else { "removed" };
                    let fill = if which == 0 { "#2ca02c" } else { "#d62728" };
                    let _ = writeln!(
                        h,
                        "<text x=\"{bar_x}\" y=\"{:.1}\" fill=\"{fill}\" font-size=\"9.5\" \
                         font-style=\"italic\">{word}</text>",
                        by + 8.0
                    );
                }
            }
        }
        h.push_str("</g>\n");
    }
    h.push_str("</svg></div>\n");

    let zero = rows.len() - costly.len();
    let mut note = format!(
        "Showing the {} costliest of {} layers with estimated cycles (largest of before and \
         after first; upper bar before, lower bar after).",
        shown.len(),
        costly.len()
    );
    if costly.len() > shown.len() {
        let rest = &costly[shown.len()..];
        let rb: u64 = rest.iter().filter_map(|r| r.before).map(|l| l.cycles).sum();
        let ra: u64 = rest.iter().filter_map(|r| r.after).map(|l| l.cycles).sum();
        let _ = write!(
            note,
            " The other {} account for {} cycles before and {} after.",
            rest.len(),
            thousands(rb),
            thousands(ra)
        );
    }
    if zero > 0 {
        let _ = write!(
            note,
            " {} layer{} with no estimated cycles (fused, in place, reshapes, or not costed) \
             {} not drawn.",
            zero,
            plural(zero),
            if zero == 1 { "is" } else { "are" }
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"note\" id=\"chart-note\">{}</p>",
        escape(&note)
    );

    let removed = rows.iter().filter(|r| r.status() == "removed").count();
    let added = rows.iter().filter(|r| r.status() == "added").count();
    let _ = writeln!(
        h,
        "<details id=\"all-layers\"><summary>All {} layers ({} kept, {} removed, {} added)\
         </summary>\n<table class=\"layers\">\n<tr><th>Layer</th><th>Op</th><th>Status</th>\
         <th class=\"num\">Cycles before</th><th class=\"num\">Cycles after</th>\
         <th class=\"num\">Util. after</th><th>Bound after</th><th>Note</th></tr>",
        rows.len(),
        rows.len() - removed - added,
        removed,
        added
    );
    for r in &rows {
        let cyc = |l: Option<&LayerCost>| l.map(|l| thousands(l.cycles)).unwrap_or_default();
        let last = r.after.or(r.before);
        let _ = writeln!(
            h,
            "<tr class=\"{}\"><td class=\"name\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{}</td><td>{}</td></tr>",
            r.status(),
            escape(&display_name(r.name, r.op)),
            escape(r.op),
            r.status(),
            cyc(r.before),
            cyc(r.after),
            r.after
                .filter(|l| l.macs > 0)
                .map(|l| format!("{:.1}%", l.utilization * 100.0))
                .unwrap_or_default(),
            last.map(|l| {
                if l.supported {
                    l.bound.as_str().to_string()
                } else {
                    format!("{} (CPU)", l.bound.as_str())
                }
            })
            .unwrap_or_default(),
            escape(last.map(|l| l.note.as_str()).unwrap_or(""))
        );
    }
    h.push_str("</table>\n</details>\n");
}

fn bar_title(r: &LayerRow) -> String {
    let c = |l: Option<&LayerCost>| {
        l.map(|l| format!("{} cycles", thousands(l.cycles)))
            .unwrap_or_else(|| "absent".into())
    };
    format!("before {}, after {}", c(r.before), c(r.after))
}

/// Applied rewrites of one pass are shown open when there are at most this
/// many of them (bookkeeping passes make hundreds).
const OPEN_PASS_ROWS: usize = 25;

fn decisions(h: &mut String, p: &PipelineReport) {
    h.push_str("<h2 id=\"decisions\">Decisions</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} applied, {} rejected. A rejected proposal is a rewrite that \
         matched but was not made; the reason says why.</p>",
        p.changes.len(),
        p.skips.len()
    );
    if !p.passes.is_empty() {
        h.push_str(
            "<table class=\"passes\" id=\"passes\">\n<tr><th>Pass</th>\
             <th class=\"num\">Applied</th><th class=\"num\">Rejected</th>\
             <th class=\"num\">Nodes before</th><th class=\"num\">Nodes after</th></tr>\n",
        );
        for s in &p.passes {
            let rejected = p.skips.iter().filter(|k| k.pass == s.pass).count();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(s.pass),
                s.rewrites,
                rejected,
                s.nodes_before,
                s.nodes_after
            );
        }
        h.push_str("</table>\n");
    }
    let head = "<tr><th class=\"num\">#</th><th>Decision</th><th>Pass</th><th>Rule</th>\
                <th>Nodes</th><th>Note / reason</th></tr>\n";

    let _ = writeln!(
        h,
        "<h3 id=\"rejected\">Rejected proposals ({})</h3>",
        p.skips.len()
    );
    if p.skips.is_empty() {
        h.push_str("<p class=\"note\">None: every rewrite that matched was made.</p>\n");
    } else {
        let _ = write!(
            h,
            "<table class=\"decisions\" id=\"rejected-table\">\n{head}"
        );
        for (i, s) in p.skips.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr class=\"rejected\"><td class=\"num\">R{}</td><td class=\"decision\">\
                 rejected</td><td>{}</td><td>{}</td><td class=\"name\">{}</td><td>{}</td></tr>",
                i + 1,
                escape(s.pass),
                escape(s.rule),
                escape(&s.node),
                escape(&s.reason)
            );
        }
        h.push_str("</table>\n");
    }

    let _ = writeln!(
        h,
        "<h3 id=\"applied\">Applied rewrites ({})</h3>",
        p.changes.len()
    );
    if p.changes.is_empty() {
        h.push_str("<p class=\"note\">None: the model is unchanged.</p>\n");
        return;
    }
    // Grouped by pass, in pipeline order (then any pass not in the summary).
    let mut order: Vec<&str> = p.passes.iter().map(|s| s.pass).collect();
    for c in &p.changes {
        if !order.contains(&c.pass) {
            order.push(c.pass);
        }
    }
    let mut n = 0;
    for pass in order {
        let changes: Vec<_> = p.changes.iter().filter(|c| c.pass == pass).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = write!(
            h,
            "<details class=\"pass-changes\"{}><summary>{} — {} applied</summary>\n\
             <table class=\"decisions\">\n{head}",
            if changes.len() <= OPEN_PASS_ROWS {
                " open"
            } else {
                ""
            },
            escape(pass),
            changes.len()
        );
        for c in changes {
            n += 1;
            let mut note = escape(&c.note);
            if !c.removed.is_empty() {
                let _ = write!(
                    note,
                    "<br><span class=\"note\">removed: {}</span>",
                    escape(&c.removed.join(", "))
                );
            }
            if !c.added.is_empty() {
                let _ = write!(
                    note,
                    "<br><span class=\"note\">added: {}</span>",
                    escape(&c.added.join(", "))
                );
            }
            let _ = writeln!(
                h,
                "<tr class=\"applied\"><td class=\"num\">{n}</td><td class=\"decision\">\
                 applied</td><td>{}</td><td>{}</td><td class=\"name\">{}</td><td>{}</td></tr>",
                escape(c.pass),
                escape(c.rule),
                escape(&c.matched.join(", ")),
                note
            );
        }
        h.push_str("</table>\n</details>\n");
    }
}

fn verification(h: &mut String, v: Option<&VerifyReport>) {
    h.push_str("<h2 id=\"verification\">Verification</h2>\n");
    let Some(v) = v else {
        h.push_str(
            "<div class=\"banner bad\" id=\"not-verified\">NOT verified. The optimized model's \
             outputs were not compared with the input model's: run without --no-verify to \
             check them with tract.</div>\n",
        );
        return;
    };
    let _ = writeln!(
        h,
        "<p class=\"sub\">Both models were run with tract on {} random input set{} (seed {}). \
         Reference: {}. {}</p>",
        v.samples,
        plural(v.samples),
        v.seed,
        escape(&v.reference.describe()),
        match v.reference {
            crate::verify::Reference::Fixed => "Fixed tolerance.".to_string(),
            _ => format!(
                "An output passes when its error is at most {} times the input model's own \
                 (its noise floor).",
                v.noise_factor
            ),
        }
    );
    h.push_str(
        "<table class=\"verification\" id=\"verification-table\">\n<tr><th>Output</th>\
         <th>Shape</th><th class=\"num\">Max abs err</th><th class=\"num\">Relative err</th>\
         <th class=\"num\">Cosine</th><th class=\"num\">Max |ref|</th><th class=\"num\">Err vs reference</th>\
         <th class=\"num\">Noise floor</th><th class=\"num\">Ratio</th><th>Verdict</th>\
         <th>Result</th></tr>\n",
    );
    for o in &v.outputs {
        let shape = o
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×");
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.6}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td>{}</td><td class=\"{}\">{}</td></tr>",
            escape(&o.name),
            shape,
            sci(o.max_abs_err),
            sci(o.max_rel_err),
            o.cosine,
            sci(o.max_abs_ref),
            o.err_vs_reference.map(sci).unwrap_or_else(|| "–".into()),
            o.noise_floor.map(sci).unwrap_or_else(|| "–".into()),
            o.ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "–".into()),
            escape(&o.verdict),
            if o.passed { "pass-ok" } else { "pass-fail" },
            if o.passed { "pass" } else { "FAIL" }
        );
    }
    h.push_str("</table>\n");
    if !v.notes.is_empty() {
        h.push_str("<ul class=\"note\">\n");
        for n in &v.notes {
            let _ = writeln!(h, "<li>{}</li>", escape(n));
        }
        h.push_str("</ul>\n");
    }
}

/// The int8 weight figures: worst and mean per-tensor SQNR before and
/// after, and the output's layers.
fn quantization(h: &mut String, q: &crate::quant_view::QuantReport) {
    use crate::quant_view::db_text;
    h.push_str("<h2 id=\"quantization\">int8 weights</h2>\n");
    h.push_str(
        "<p class=\"sub\">Symmetric int8 on [-127, 127]: channel-mean SQNR in dB (6 dB ≈ 1 bit) \
         and the range spread across output channels. Weights only: activations need data and \
         are not estimated.</p>\n<table class=\"totals\" id=\"quantization-summary\">\n\
         <tr><th></th><th class=\"num\">Input</th><th class=\"num\">Output</th></tr>\n",
    );
    for (label, b, a) in [
        (
            "Worst per-tensor SQNR (dB)",
            db_text(q.input.worst_sqnr_per_tensor_db),
            db_text(q.output.worst_sqnr_per_tensor_db),
        ),
        (
            "Mean per-tensor SQNR (dB, weighted by weights)",
            db_text(q.input.mean_sqnr_per_tensor_db),
            db_text(q.output.mean_sqnr_per_tensor_db),
        ),
        (
            "Largest range spread",
            format!("{:.1}", q.input.max_range_spread),
            format!("{:.1}", q.output.max_range_spread),
        ),
    ] {
        let _ = writeln!(
            h,
            "<tr><td>{label}</td><td class=\"num\">{b}</td><td class=\"num\">{a}</td></tr>"
        );
    }
    h.push_str("</table>\n");
    if q.layers.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<details><summary>{} layers of the output</summary>\n<table class=\"verification\" \
         id=\"quantization-layers\">\n<tr><th>Layer</th><th>Op</th><th class=\"num\">Out \
         channels</th><th class=\"num\">Range spread</th><th class=\"num\">Per-tensor SQNR</th>\
         <th class=\"num\">Per-channel SQNR</th></tr>",
        q.layers.len()
    );
    for l in &q.layers {
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&l.node),
            escape(&l.op_type),
            l.out_channels,
            l.range_spread,
            db_text(l.sqnr_per_tensor_db),
            db_text(l.sqnr_per_channel_db)
        );
    }
    h.push_str("</table>\n</details>\n");
}

/// A node's name, or a stand-in for an unnamed one.
fn display_name(name: &str, op: &str) -> String {
    if name.is_empty() {
        format!("(unnamed {op})")
    } else {
        name.to_string()
    }
}

/// Keeps the end of a long name (its most specific part): `…conv.0/Conv`.
fn truncate(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn change_pct(before: f64, after: f64) -> String {
    if before == after {
        return "0%".into();
    }
    if before == 0.0 {
        return "new".into();
    }
    let pct = (after - before) / before * 100.0;
    let class = if pct < 0.0 { "better" } else { "worse" };
    format!("<span class=\"{class}\">{pct:+.1}%</span>")
}

fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.is_finite() {
        format!("{x:.3e}")
    } else {
        "inf".into()
    }
}

fn fmt_f(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
