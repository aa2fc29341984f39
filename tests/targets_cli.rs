//! `npuopt targets` and `npuopt inspect --target`.

use std::process::{Command, Output};

use prost::Message;

fn npuopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(args)
        .output()
        .expect("npuopt runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The synthetic depthwise model (3×3, 5×5 and multiplier-2 depthwise
/// convs) written to a temporary file.
fn depthwise_model(dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("dw.onnx");
    std::fs::write(
        &p,
        npuopt_fixtures::synthetic::depthwise_convs().encode_to_vec(),
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn targets_lists_every_builtin() {
    let o = npuopt(&["targets"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for n in npuopt_targets::builtin_names() {
        assert!(text.contains(n), "{n} missing from:\n{text}");
    }
    assert!(text.contains("500 MHz"), "{text}");

    let o = npuopt(&["targets", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), npuopt_targets::builtin_names().len());
    let ethos = &rows[0];
    assert_eq!(ethos["name"], "ethos-u55-256");
    assert_eq!(ethos["macs_per_cycle"], 256);
    assert!(ethos["source"].as_str().unwrap().contains("Vela"));
}

#[test]
fn targets_name_shows_one_in_full() {
    let o = npuopt(&["targets", "hexagon-htp", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["target"]["name"], "hexagon-htp");
    assert_eq!(v["depthwise"]["kernels"], serde_json::json!([3]));
    assert_eq!(v["group"]["mode"], "cpu");
    // Text: the built-in file itself, with its sources as comments.
    let o = npuopt(&["targets", "axera-m55h"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("NO public per-op figures for the M55H"));
}

#[test]
fn unknown_target_is_bad_input_and_lists_the_known_ones() {
    for args in [
        vec!["targets", "tpu9000"],
        vec!["inspect", "whatever.onnx", "--target", "tpu9000"],
    ] {
        let o = npuopt(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert!(e.contains("unknown target 'tpu9000'"), "{e}");
        assert!(
            e.contains("ethos-u55-256") && e.contains("cpu-generic"),
            "{e}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn a_broken_target_file_is_bad_input_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mine.toml");
    let text = npuopt_targets::builtin_text("edgetpu")
        .unwrap()
        .replace("kstep = 1", "kstep = 1\nksteps = 2");
    std::fs::write(&p, text).unwrap();
    let o = npuopt(&["targets", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("mine.toml:") && e.contains("depthwise.ksteps"),
        "{e}"
    );
}

#[test]
fn inspect_with_target_json_has_exactly_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let model = depthwise_model(&dir);
    let o = npuopt(&["inspect", &model, "--target", "hexagon-htp", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "disputes",
            "flags",
            "latency_ms",
            "layers",
            "symbols_at_one",
            "target",
            "total_cycles",
            "unsized_layers",
            "unsized_mac_layers"
        ]
    );
    assert_eq!(v["target"], "hexagon-htp");
    let layers = v["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for l in layers {
        let mut k: Vec<&str> = l.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        k.sort();
        assert_eq!(
            k,
            [
                "bound",
                "cycles",
                "executed_macs",
                "macs",
                "name",
                "op",
                "supported",
                "unsized",
                "utilization"
            ]
        );
    }
    let total: u64 = layers.iter().map(|l| l["cycles"].as_u64().unwrap()).sum();
    assert_eq!(v["total_cycles"].as_u64().unwrap(), total);
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
    let flags = v["flags"].as_array().unwrap();
    assert!(
        flags.iter().any(|f| f["kind"] == "fallback"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("5×5 depthwise conv falls back to the CPU on hexagon-htp")),
        "{flags:#?}"
    );
}

#[test]
fn inspect_with_target_text_labels_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let model = depthwise_model(&dir);
    // A target file by path.
    let p = dir.path().join("u55.toml");
    std::fs::write(&p, npuopt_targets::builtin_text("ethos-u55-256").unwrap()).unwrap();
    let o = npuopt(&["inspect", &model, "--target", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("total (estimate):"), "{text}");
    assert!(text.contains("cycles (est)"), "{text}");
    assert!(text.contains("depthwise-to-group"), "{text}");
}

#[test]
fn help_shows_target_examples() {
    let o = npuopt(&["inspect", "--help"]);
    assert!(stdout(&o).contains("--target ethos-u55-256"));
    let o = npuopt(&["targets", "--help"]);
    assert!(stdout(&o).contains("npuopt targets hexagon-htp"));
}
