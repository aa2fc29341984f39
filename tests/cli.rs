//! The command-line contract: exit codes, JSON on stdout, help with examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn npuopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(args)
        .output()
        .expect("npuopt runs")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real")
        .join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn optimize_with_no_passes_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("repvgg_ts.onnx");
    let out = dir.path().join("out.onnx");
    let o = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "none",
        "--no-verify",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&input).unwrap());
    assert!(stderr(&o).contains("nodes"), "{}", stderr(&o));
}

#[test]
fn quiet_optimize_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let input = fixture("repvgg_ts.onnx");
    let o = npuopt(&[
        "-q",
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "none",
        "--no-verify",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn the_output_may_not_be_the_input_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::copy(fixture("repvgg_ts.onnx"), &model).unwrap();
    let m = model.to_str().unwrap();
    let o = npuopt(&["optimize", m, "-o", m, "--passes", "none", "--no-verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = npuopt(&[
        "optimize",
        m,
        "-o",
        m,
        "--passes",
        "none",
        "--no-verify",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn unknown_pass_is_a_usage_error() {
    let input = fixture("repvgg_ts.onnx");
    let o = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        "/tmp/never-written.onnx",
        "--passes",
        "fold-everything",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown pass 'fold-everything'"),
        "{}",
        stderr(&o)
    );
    assert!(!Path::new("/tmp/never-written.onnx").exists());
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let o = npuopt(&["inspect", "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_broken_model_is_exit_1_naming_the_node() {
    use npuopt::ir::proto::*;
    use prost::Message;
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                name: Some("add_7".into()),
                op_type: Some("Add".into()),
                input: vec!["x".into(), "missing".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![ValueInfoProto {
                name: Some("x".into()),
                ..Default::default()
            }],
            output: vec![ValueInfoProto {
                name: Some("y".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let out = dir.path().join("out.onnx");
    let o = npuopt(&[
        "optimize",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "none",
        "--no-verify",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("node 'add_7' (Add): input 'missing'"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    std::fs::write(&path, b"garbage").unwrap();
    let o = npuopt(&["inspect", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an ONNX model"), "{}", stderr(&o));
}

#[test]
fn inspect_json_is_one_document_with_the_summary() {
    let o = npuopt(&[
        "inspect",
        fixture("mobileone_ts.onnx").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(v["opsets"]["ai.onnx"], 13);
    assert!(v["producer"].as_str().unwrap().starts_with("pytorch"));
    assert_eq!(v["inputs"][0]["ty"], "f32[1,3,64,64]");
    let convs = v["ops"]["Conv"].as_u64().unwrap();
    assert!(convs > 100, "{convs}");
    assert!(v["macs"].as_u64().unwrap() > 0);
    assert!(v["parameters"].as_u64().unwrap() > 0);
    assert!(!v["largest_layers"].as_array().unwrap().is_empty());
}

#[test]
fn inspect_text_and_dump() {
    let path = fixture("repvgg_deploy_ts.onnx");
    let o = npuopt(&["inspect", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("producer:") && text.contains("MACs:"),
        "{text}"
    );
    let o = npuopt(&["inspect", path.to_str().unwrap(), "--dump"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("graph "), "{text}");
    assert!(text.contains("= Conv("), "{text}");
}

#[test]
fn passes_json_parses() {
    let o = npuopt(&["passes", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["passes"].is_array());
}

#[test]
fn every_command_has_help_with_examples() {
    for cmd in ["optimize", "verify", "inspect", "passes"] {
        let o = npuopt(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("Examples:"), "{cmd}: {text}");
    }
    let o = npuopt(&["--help"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("Exit codes:"), "{text}");
}

fn perturbed_copy(src: &Path, dst: &Path) {
    let mut m = npuopt::ir::import::load(src).unwrap();
    let g = &mut m.graph;
    let w = g
        .initializers()
        .find(|&v| g.value(v).initializer().unwrap().dims().len() == 4)
        .unwrap();
    let t = g.value(w).initializer().unwrap().clone();
    let data: Vec<f32> = t.to_f32().unwrap().iter().map(|v| v * 1.01).collect();
    g.set_initializer(w, npuopt::ir::Tensor::from_f32("", t.dims(), &data));
    m.write(dst, &Default::default()).unwrap();
}

#[test]
fn verify_exit_codes_match_and_mismatch() {
    let a = fixture("resnet_ts.onnx");
    let o = npuopt(&["verify", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("outputs match"));

    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("perturbed.onnx");
    perturbed_copy(&a, &b);
    let o = npuopt(&["verify", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(v["passed"], false);
    assert!(v["outputs"][0]["max_abs_err"].as_f64().unwrap() > 0.0);
}

#[test]
fn verify_of_an_unsupported_op_is_exit_1_naming_it() {
    let fixture = npuopt_fixtures::synthetic::lossless_features();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custom.onnx");
    use prost::Message;
    std::fs::write(&path, fixture.encode_to_vec()).unwrap();
    let p = path.to_str().unwrap();
    let o = npuopt(&["verify", p, p]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("tract"), "{}", stderr(&o));
    // optimize verifies by default: the same model cannot be verified, so
    // nothing is written and the exit code is 1, not a silent success.
    let out = dir.path().join("out.onnx");
    let o = npuopt(&["optimize", p, "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn optimize_report_is_complete_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("repvgg_ts.onnx");
    let mut outputs = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("out{i}.onnx"));
        let report = dir.path().join(format!("report{i}.json"));
        let o = npuopt(&[
            "optimize",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        // Paths differ by design between the two runs; everything else must not.
        json["output"]["path"] = serde_json::Value::Null;
        outputs.push((std::fs::read(&out).unwrap(), json));
    }
    assert!(
        outputs[0].0 == outputs[1].0,
        "output bytes differ between runs"
    );
    assert_eq!(outputs[0].1, outputs[1].1, "reports differ between runs");
    let r = &outputs[0].1;
    assert_eq!(r["tool"]["name"], "npuopt");
    assert!(r["input"]["hash"].as_str().unwrap().starts_with("fnv1a64:"));
    assert!(r["totals"]["nodes"]["after"].as_u64() < r["totals"]["nodes"]["before"].as_u64());
    assert!(r["passes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pass"] == "fold-batchnorm" && p["rewrites"].as_u64().unwrap() > 0));
    assert!(!r["changes"].as_array().unwrap().is_empty());
    assert_eq!(r["verification"]["passed"], true);
}

/// Change notes reach the user only through a report, so a run without
/// one skips their content hashes: the report of a run that asks keeps
/// them (`fold-constants` names each folded tensor `f32[…] #hash`), and the
/// written model is the same bytes either way.
#[test]
fn folded_tensor_notes_keep_their_hash_in_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("levit_ts.onnx");
    let (with, without) = (dir.path().join("a.onnx"), dir.path().join("b.onnx"));
    let report = dir.path().join("r.json");
    let o = npuopt(&[
        "-q",
        "optimize",
        input.to_str().unwrap(),
        "-o",
        with.to_str().unwrap(),
        "--no-verify",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = npuopt(&[
        "-q",
        "optimize",
        input.to_str().unwrap(),
        "-o",
        without.to_str().unwrap(),
        "--no-verify",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(&with).unwrap() == std::fs::read(&without).unwrap());
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let hashed = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == "fold-constants")
        .filter(|c| c["note"].as_str().unwrap().contains("] #"))
        .count();
    assert!(hashed > 0, "no fold-constants note with a content hash");
}

#[test]
fn dump_after_and_max_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("repvgg_ts.onnx");
    let out = dir.path().join("out.onnx");
    let dump = dir.path().join("after-fold.txt");
    let report = dir.path().join("r.json");
    let o = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "fold-batchnorm",
        "--max-rewrites",
        "3",
        "--dump-after",
        "fold-batchnorm",
        dump.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&dump)
        .unwrap()
        .starts_with("graph "));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["changes"].as_array().unwrap().len(), 3);
    assert_eq!(r["hit_rewrite_cap"], true);
}

#[test]
fn report_html_is_written_with_the_estimates_and_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("ghostnet_ts.onnx");
    let out = dir.path().join("out.onnx");
    let html = dir.path().join("report.html");
    let o = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "axera-m55h",
        "--report-html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("ghostnet_ts.onnx") && page.contains("axera-m55h"));
    assert!(
        page.contains("Verified with tract"),
        "verification banner missing"
    );
    assert!(page.contains("concat-to-add"), "decisions missing");
    assert!(page.contains("<svg"), "chart missing");
}

/// `npuopt inspect m.onnx --dump | head -1`: the reader goes away while
/// npuopt is still writing (170 KB, more than a pipe holds). npuopt must end
/// quietly — killed by SIGPIPE like any Unix filter, or exit 0 — never panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(["inspect", "fixtures/real/mobileone_ts.onnx", "--dump"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("graph "), "{first}");
    // The reader is dropped here: the rest of the dump hits a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc_sigpipe()),
        "{:?}: {stderr}",
        out.status
    );
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux and the BSDs
}

/// A pass that left matches alone says how many on its summary line (the
/// QDQ fixture's 52 BNs sit behind Quantize/DequantizeLinear pairs), so
/// "0 rewrites" is not read as "nothing to do".
#[test]
fn optimize_counts_what_each_pass_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let input = fixture("qdq_ts.onnx");
    let o = npuopt(&[
        "optimize",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--no-verify",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.trim_start().starts_with("fold-batchnorm "))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        line.contains(" 0 rewrites") && line.contains("52 not applied (reasons: --report FILE)"),
        "{}",
        stderr(&o)
    );
}

/// A dynamo export keeps its weights in a side file: the sizes reported
/// count it, before and after (its `.onnx` alone said "1.5 MiB → 10.1
/// MiB" for EfficientViT-M0, whose weights had only moved inline).
#[test]
fn sizes_count_external_data_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    let m = npuopt::ir::import::load(&fixture("repvgg_ts.onnx")).unwrap();
    let ext = npuopt::ir::export::WriteOptions {
        external: Some(npuopt::ir::export::ExternalData {
            location: "in.onnx.data".into(),
            min_bytes: 1024,
        }),
        ..Default::default()
    };
    m.write(&input, &ext).unwrap();
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let in_data = size(&dir.path().join("in.onnx.data"));
    assert!(in_data > 0);
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("r.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "optimize",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--no-verify",
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = npuopt(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (stderr(&o), r)
    };
    // Written inline: the side file counts before only.
    let (text, r) = run(&[]);
    assert_eq!(r["input"]["bytes"], size(&input));
    assert_eq!(r["input"]["external_bytes"], in_data);
    assert_eq!(r["output"]["external_bytes"], 0);
    assert_eq!(r["totals"]["file_bytes"]["before"], size(&input) + in_data);
    assert_eq!(r["totals"]["file_bytes"]["after"], size(&out));
    assert!(text.contains("external data) → "), "{text}");
    // Written with a side file: it counts after too.
    let (text, r) = run(&["--external-data"]);
    let out_data = size(&dir.path().join("out.onnx.data"));
    assert_eq!(r["output"]["bytes"], size(&out));
    assert_eq!(r["output"]["external_bytes"], out_data);
    assert_eq!(r["totals"]["file_bytes"]["after"], size(&out) + out_data);
    assert_eq!(text.matches("external data)").count(), 2, "{text}");
}
