//! Target files: every built-in parses; schema errors name the file and
//! the field and say what was expected.

use npuopt_targets::{builtin_names, Target, TargetError};

const ETHOS: &str = include_str!("../builtin/ethos-u55-256.toml");

fn err(text: &str) -> String {
    match Target::from_toml(text, "my-npu.toml") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_builtin_parses_and_says_where_its_numbers_come_from() {
    let names = builtin_names();
    assert_eq!(
        names,
        [
            "ethos-u55-256",
            "edgetpu",
            "hexagon-htp",
            "axera-m55h",
            "cpu-generic"
        ]
    );
    for n in names {
        let t = Target::builtin(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(t.name(), n);
        assert!(!t.target.source.is_empty(), "{n} has no source");
        assert!(!t.target.assumptions.is_empty(), "{n} lists no assumptions");
        assert!(t.peak_macs_per_cycle() > 0.0);
    }
}

#[test]
fn axera_states_that_its_figures_are_family_rules() {
    let t = Target::builtin("axera-m55h").unwrap();
    assert!(t
        .target
        .source
        .contains("no public per-op figures for the M55H"));
}

#[test]
fn unknown_field_is_named_with_file_and_line() {
    let text = ETHOS.replace("cout = 16\n", "cout = 16\ncout_align = 8\n");
    let e = err(&text);
    assert!(e.starts_with("my-npu.toml:"), "{e}");
    assert!(e.contains("field `align.cout_align`"), "{e}");
    assert!(e.contains("unknown field `cout_align`"), "{e}");
}

#[test]
fn wrong_type_names_field_and_expected_type() {
    let text = ETHOS.replace("macs_per_cycle = 256", "macs_per_cycle = \"256\"");
    let e = err(&text);
    assert!(e.contains("my-npu.toml:"), "{e}");
    assert!(e.contains("compute.macs_per_cycle"), "{e}");
    assert!(e.contains("integer") || e.contains("u32"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let text = ETHOS.replace("out_cycles_per_elem = 0.25\n", "");
    let e = err(&text);
    assert!(e.contains("my-npu.toml:"), "{e}");
    assert!(e.contains("conv.out_cycles_per_elem"), "{e}");
    assert!(e.contains("missing field"), "{e}");
}

#[test]
fn missing_table_is_named() {
    let start = ETHOS.find("[fallback]").unwrap();
    let e = err(&ETHOS[..start]);
    assert!(e.contains("my-npu.toml:"), "{e}");
    assert!(e.contains("fallback"), "{e}");
}

#[test]
fn bad_formula_lists_the_named_formulas() {
    let text = ETHOS.replace("stride2_eff = \"1.0\"", "stride2_eff = \"cout*2\"");
    let e = err(&text);
    assert!(e.contains("conv.stride2_eff"), "{e}");
    assert!(e.contains("cout/(cout+N)"), "{e}");
}

#[test]
fn kernel_table_needs_other_and_integer_keys() {
    let e = err(&ETHOS.replace("other = 1.0 }", "big = 1.0 }"));
    assert!(e.contains("conv.kernel_eff"), "{e}");
    assert!(e.contains("`big`"), "{e}");
}

#[test]
fn bad_group_mode_lists_the_modes() {
    let e = err(&ETHOS.replace("mode = \"split\"", "mode = \"fast\""));
    assert!(e.contains("group.mode"), "{e}");
    assert!(
        e.contains("native") && e.contains("split") && e.contains("cpu"),
        "{e}"
    );
}

#[test]
fn zero_alignment_is_rejected() {
    let e = err(&ETHOS.replace("cin = 32", "cin = 0"));
    assert!(e.contains("align.cin"), "{e}");
    let line = ETHOS.lines().position(|l| l == "cin = 32").unwrap() + 1;
    assert!(e.starts_with(&format!("my-npu.toml:{line}:1: ")), "{e}");
}

#[test]
fn resolve_takes_names_and_paths() {
    assert_eq!(Target::resolve("edgetpu").unwrap().name(), "edgetpu");
    let dir = std::env::temp_dir().join(format!("npuopt-targets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("mine.toml");
    std::fs::write(&p, ETHOS.replace("\"ethos-u55-256\"", "\"mine\"")).unwrap();
    assert_eq!(Target::resolve(p.to_str().unwrap()).unwrap().name(), "mine");
    match Target::resolve("nope") {
        Err(TargetError::UnknownTarget { known, .. }) => assert!(known.contains(&"edgetpu".into())),
        other => panic!("{other:?}"),
    }
    match Target::resolve(dir.join("absent.toml").to_str().unwrap()) {
        Err(TargetError::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn round_trips_through_serde() {
    for n in builtin_names() {
        let t = Target::builtin(n).unwrap();
        let text = toml::to_string(&t).unwrap();
        let again = Target::from_toml(&text, "again.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.conv.stride2_eff, t.conv.stride2_eff);
        assert_eq!(again.conv.kernel_eff, t.conv.kernel_eff);
        assert_eq!(again.depthwise.kernels, t.depthwise.kernels);
    }
}

#[test]
fn heavier_margin_is_a_fraction_with_a_default() {
    let t = Target::from_toml(ETHOS, "e.toml").unwrap();
    assert_eq!(t.cost.heavier_margin, 0.02);
    // A file without [cost] gets the default.
    let start = ETHOS.find("[cost]").unwrap();
    let end = ETHOS[start..].find("\n[").unwrap() + start + 1;
    let without = format!("{}{}", &ETHOS[..start], &ETHOS[end..]);
    let t = Target::from_toml(&without, "e.toml").unwrap();
    assert_eq!(t.cost.heavier_margin, 0.02);
    let t = Target::from_toml(
        &ETHOS.replace("heavier_margin = 0.02", "heavier_margin = 0.1"),
        "e.toml",
    )
    .unwrap();
    assert_eq!(t.cost.heavier_margin, 0.1);
    for bad in ["1.5", "-0.1", "nan"] {
        let e = err(&ETHOS.replace("heavier_margin = 0.02", &format!("heavier_margin = {bad}")));
        assert!(e.contains("cost.heavier_margin"), "{bad}: {e}");
    }
}
