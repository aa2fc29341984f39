//! The HTML report (`npuopt::report_html`): checks on the HTML text, and a
//! real browser test that loads the page in headless Chromium and checks
//! what it rendered.
//!
//! The report input comes from a real run: fixtures/real/mobilenetv2_ts.onnx
//! through the default pipeline, estimated on `ethos-u55-256` before and
//! after, verified with tract.
//!
//! Browser gating. The browser test needs Debian's `chromium` package at
//! `/usr/bin/chromium` (`./test.sh` installs it when absent). When it is
//! missing the test FAILS with a message saying how to install it; it never
//! passes silently. Setting `NPUOPT_SKIP_BROWSER_TESTS=1` turns that failure
//! into a skip: libtest on stable Rust cannot mark a test ignored at run
//! time, so the test then returns early and counts as "ok" in cargo's
//! summary — to keep that from passing for a browser check, it writes a loud
//! `SKIPPED` line straight to the process's stderr (not through the
//! captured `eprintln!`), so the skip shows in every `cargo test` log.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use npuopt::inspect::ModelSummary;
use npuopt::report_html::{render, write_html_report, ReportInput};
use npuopt::verify::VerifyReport;
use npuopt_passes::change::Skip;
use npuopt_passes::{Change, PipelineReport};
use npuopt_targets::{estimate, Estimate, Target};

const CHROMIUM: &str = "/usr/bin/chromium";
const TARGET: &str = "ethos-u55-256";

/// Everything a report borrows, from one real optimize run.
struct Run {
    pipeline: PipelineReport,
    before: ModelSummary,
    after: ModelSummary,
    est_before: Estimate,
    est_after: Estimate,
    verification: VerifyReport,
    quantization: npuopt::quant_view::QuantReport,
}

impl Run {
    fn input<'a>(&'a self, model_name: &'a str) -> ReportInput<'a> {
        ReportInput {
            unverified: None,
            model_name,
            target: Some(TARGET),
            estimate_before: Some(&self.est_before),
            estimate_after: Some(&self.est_after),
            capacity_budget: None,
            pipeline: &self.pipeline,
            before: &self.before,
            after: &self.after,
            verification: Some(&self.verification),
            quantization: Some(&self.quantization),
        }
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/real/mobilenetv2_ts.onnx")
}

fn real_run() -> Run {
    let bytes = std::fs::read(fixture()).expect("fixtures/real/mobilenetv2_ts.onnx is committed");
    let mut model = npuopt::load_bytes(bytes.clone()).expect("imports");
    let target = Target::builtin(TARGET).expect("built-in target");
    let before = npuopt::summarize(&model);
    let quant_before = npuopt::quant_view::input_summary(&model);
    let est_before = estimate(&model.graph, &target);
    let passes = npuopt::default_passes();
    let pipeline =
        npuopt_passes::run_pipeline(&mut model, &passes, Default::default()).expect("pipeline");
    let after = npuopt::summarize(&model);
    let est_after = estimate(&model.graph, &target);
    let candidate = model.to_bytes().expect("encodes");
    let verification =
        npuopt::verify::verify_bytes(&bytes, &candidate, &Default::default()).expect("tract runs");
    assert!(verification.passed, "{:?}", verification.outputs);
    let quantization = npuopt::quant_view::report(quant_before, &model);
    Run {
        pipeline,
        before,
        after,
        est_before,
        est_after,
        verification,
        quantization,
    }
}

fn shared_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(real_run)
}

/// A model name and decisions full of markup, as a hostile or merely odd
/// model could carry.
const EVIL_NAME: &str = "mobilenet<script>alert(\"x\")</script> & 'v2'";
const EVIL_NODE: &str = "<img src=x onerror=alert(1)>\"&'";

fn with_evil_decisions(p: &PipelineReport) -> PipelineReport {
    let mut p = p.clone();
    p.changes.push(
        Change::new(
            "fold-batchnorm",
            "bn-into-conv",
            &[EVIL_NODE, "b&q"],
            format!("folded BN '{EVIL_NODE}' into conv"),
        )
        .removed(&[EVIL_NODE]),
    );
    p.skips.push(Skip {
        pass: "depthwise-to-group",
        rule: "expand",
        node: EVIL_NODE.into(),
        reason: "estimated latency rises: 1.0 ms -> 1.2 ms <worse>".into(),
    });
    p
}

#[test]
fn page_has_every_section_and_real_figures() {
    let run = shared_run();
    let html = render(&run.input("mobilenetv2_ts.onnx"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    for id in [
        "id=\"title\"",
        "id=\"totals\"",
        "id=\"latency\"",
        "id=\"cycles-chart\"",
        "id=\"legend\"",
        "id=\"chart-note\"",
        "id=\"decisions\"",
        "id=\"passes\"",
        "id=\"rejected\"",
        "id=\"applied\"",
        "id=\"verification-table\"",
        "id=\"all-layers\"",
        "id=\"quantization-summary\"",
        "id=\"quantization-layers\"",
    ] {
        assert!(html.contains(id), "missing {id}");
    }
    // The int8 section carries the figures of both models.
    let q = &run.quantization;
    assert!(html.matches("<tr><td class=\"name\">").count() >= q.layers.len());
    for v in [
        q.input.worst_sqnr_per_tensor_db,
        q.output.worst_sqnr_per_tensor_db,
    ] {
        let text = npuopt::quant_view::db_text(v);
        assert!(html.contains(&format!(">{text}<")), "missing {text}");
    }
    assert!(html.contains("mobilenetv2_ts.onnx"));
    assert!(html.contains("on ethos-u55-256"));
    assert!(html.contains("Cycles (estimate)"));
    assert!(html.contains("Latency (estimate)"));
    assert!(html.contains(&format!("{:.3} ms", run.est_before.latency_ms)));
    assert!(html.contains(&format!("{:.3} ms", run.est_after.latency_ms)));
    assert!(html.contains(&npuopt::report_html::thousands(run.est_before.total_cycles)));
    assert!(html.contains(&npuopt::report_html::thousands(run.est_after.total_cycles)));
    assert!(html.contains("Verified with tract"));
    assert!(!html.contains("NOT verified"));
    // Every applied change and every skip is a row of the decisions table.
    assert!(
        !run.pipeline.changes.is_empty(),
        "the pipeline did something"
    );
    assert_eq!(
        html.matches("<tr class=\"applied\">").count(),
        run.pipeline.changes.len()
    );
    assert_eq!(
        html.matches("<tr class=\"rejected\">").count(),
        run.pipeline.skips.len()
    );
    // The chart is capped, and its legend names removed and added layers.
    let bars = html.matches("<g class=\"layer ").count();
    assert!(
        bars > 0 && bars <= npuopt::report_html::CHART_LAYERS,
        "{bars}"
    );
    assert!(html.contains("removed by the optimizer"));
    assert!(html.contains("added by the optimizer"));
    for o in &run.verification.outputs {
        assert!(html.contains(&npuopt::report_html::escape(&o.name)));
    }
    // Self-contained: nothing loaded from anywhere, no script.
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(!html.contains(" src="));
    assert!(!html.contains("https://"));
}

#[test]
fn page_is_deterministic() {
    let a = render(&shared_run().input("m.onnx"));
    let b = render(&shared_run().input("m.onnx"));
    assert_eq!(a, b);
    // A second, independent run of the whole pipeline gives the same page.
    let other = real_run();
    assert_eq!(a, render(&other.input("m.onnx")));
}

#[test]
fn model_text_is_escaped() {
    let run = shared_run();
    let evil = with_evil_decisions(&run.pipeline);
    let mut input = run.input(EVIL_NAME);
    input.pipeline = &evil;
    input.target = Some("t<\"&'>");
    let html = render(&input);
    assert!(!html.contains("<script"), "model text became markup");
    assert!(!html.contains("<img"), "model text became markup");
    assert!(!html.contains("<worse>"));
    assert!(!html.contains("t<\""));
    assert!(html
        .contains("mobilenet&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;v2&#39;"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&amp;&#39;"));
    assert!(html.contains("b&amp;q"));
    assert!(html.contains("t&lt;&quot;&amp;&#39;&gt;"));
}

#[test]
fn a_capacity_run_shows_its_budget() {
    let run = shared_run();
    let mut input = run.input("m.onnx");
    assert!(!render(&input).contains("id=\"capacity-budget\""));
    input.capacity_budget = Some(123_456);
    let html = render(&input);
    let row = html
        .lines()
        .find(|l| l.contains("id=\"capacity-budget\""))
        .expect("a budget row");
    assert!(row.contains("123456 cycles"), "{row}");
}

#[test]
fn unverified_and_untargeted_runs_say_so() {
    let run = shared_run();
    let mut input = run.input("m.onnx");
    input.verification = None;
    input.target = None;
    input.estimate_before = None;
    input.estimate_after = None;
    let html = render(&input);
    assert!(html.contains("NOT verified"));
    assert!(html.contains("id=\"not-verified\""));
    assert!(html.contains("No target given"));
    assert!(!html.contains("id=\"cycles-chart\""));
    assert!(!html.contains("Verified with tract"));
}

#[test]
fn write_is_atomic_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, "old").unwrap();
    let input = shared_run().input("m.onnx");
    write_html_report(&path, &input).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&input));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("report.html")]);
    assert!(write_html_report(dir.path().join("missing/r.html"), &input).is_err());
}

// ---------------------------------------------------------------- browser

/// `Some(reason)` when the browser tests are skipped on purpose; panics
/// when Chromium is missing and no skip was asked for.
fn chromium_or_skip() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return None;
    }
    if std::env::var("NPUOPT_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        return Some("NPUOPT_SKIP_BROWSER_TESTS=1 and /usr/bin/chromium is absent");
    }
    panic!(
        "{CHROMIUM} is missing: the HTML report's browser test needs Debian's chromium \
         package. Install it with `apt-get update && apt-get install -y chromium` (./test.sh does), \
         or set NPUOPT_SKIP_BROWSER_TESTS=1 to skip this test visibly."
    );
}

/// Written to the real stderr, past libtest's output capture.
fn loud_skip(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why}. The HTML report was NOT checked in a browser. ***\n"
    );
}

/// Runs headless Chromium with `args` then the page's URL; returns stdout.
fn chromium(page: &Path, args: &[&str]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 180 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.success(),
        "chromium failed ({status}) on {url}: {}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

#[test]
fn report_renders_in_headless_chromium() {
    if let Some(why) = chromium_or_skip() {
        loud_skip("report_renders_in_headless_chromium", why);
        return;
    }
    let run = shared_run();
    let evil = with_evil_decisions(&run.pipeline);
    let mut input = run.input(EVIL_NAME);
    input.pipeline = &evil;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    write_html_report(&page, &input).unwrap();

    // The DOM as the browser parsed it.
    let dom = String::from_utf8(chromium(&page, &["--dump-dom"])).expect("UTF-8 DOM");
    assert!(dom.contains("<h1 id=\"title\">"), "no title in:\n{dom}");
    // The hostile names stayed text: no script or img element was created.
    assert!(
        !dom.contains("<script"),
        "markup from the model ran:\n{dom}"
    );
    assert!(!dom.contains("<img"), "markup from the model ran:\n{dom}");
    assert!(dom.contains("mobilenet&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'v2'"));
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;\"&amp;'"));
    // Figures and decisions as rendered.
    let t = npuopt::report_html::thousands;
    assert!(dom.contains(&t(run.est_before.total_cycles)));
    assert!(dom.contains(&t(run.est_after.total_cycles)));
    assert!(dom.contains(&format!("{:.3} ms", run.est_before.latency_ms)));
    assert!(dom.contains(&format!("{:.3} ms", run.est_after.latency_ms)));
    assert!(dom.contains("Latency (estimate)"));
    assert!(dom.contains(&t(run.before.nodes as u64)));
    // One row per decision: the parser kept the table's structure.
    assert_eq!(
        dom.matches("<tr class=\"applied\">").count(),
        evil.changes.len()
    );
    assert_eq!(
        dom.matches("<tr class=\"rejected\">").count(),
        evil.skips.len()
    );
    for c in &run.pipeline.changes {
        let note = c
            .note
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(dom.contains(&note), "decision not shown: {note}");
    }
    // The chart: an SVG with one group per drawn layer.
    assert!(dom.contains("<svg id=\"cycles-chart\""));
    let groups = dom.matches("<g class=\"layer ").count();
    assert!(groups > 0 && groups <= npuopt::report_html::CHART_LAYERS);
    // The verification figures.
    assert!(dom.contains("Verified with tract"));
    for o in &run.verification.outputs {
        assert!(dom.contains(&format!("{:.6}", o.cosine)));
    }
    assert!(dom.contains(">pass<"));

    // And it paints: a screenshot of real size with more than a blank page's
    // bytes (a blank 1280×2000 PNG is a few KB).
    let png = dir.path().join("report.png");
    chromium(
        &page,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1280, 2000));
    assert!(
        bytes.len() > 40_000,
        "screenshot is only {} bytes: the page looks blank",
        bytes.len()
    );
    // To look at it: NPUOPT_REPORT_SCREENSHOT=/tmp/report.png keeps the
    // screenshot, and the page beside it as /tmp/report.png.html.
    if let Ok(keep) = std::env::var("NPUOPT_REPORT_SCREENSHOT") {
        std::fs::copy(&png, &keep).unwrap();
        std::fs::copy(&page, format!("{keep}.html")).unwrap();
    }
}
