//! What an estimate could not see, said once: layers it could not size and
//! symbolic dims it evaluated at 1.

use std::fmt::Write;

use npuopt_targets::Estimate;

/// Unsized layers listed by name in text output; the rest are counted.
const LISTED: usize = 10;

/// The lines an estimate's caveats take (empty when there are none).
pub(crate) fn estimate_notes(e: &Estimate) -> String {
    let mut s = String::new();
    if e.unsized_layers > 0 {
        let _ = writeln!(
            s,
            "{} layer{} could not be sized ({} of them conv or matrix products, whose MACs are missing): \
             not costed, the total is a lower bound",
            e.unsized_layers,
            if e.unsized_layers == 1 { "" } else { "s" },
            e.unsized_mac_layers
        );
        for l in e
            .layers
            .iter()
            .filter(|l| l.missing_shape.is_some())
            .take(LISTED)
        {
            let _ = writeln!(s, "  {} ({}): {}", l.name, l.op, l.note);
        }
        if e.unsized_layers > LISTED {
            let _ = writeln!(s, "  … {} more (see --json)", e.unsized_layers - LISTED);
        }
    }
    if !e.symbols_at_one.is_empty() {
        let _ = writeln!(s, "{}", symbols_note(&e.symbols_at_one));
    }
    s
}

/// `symbolic dims evaluated at 1 in the estimate: N, height (pin them with --input-shape)`.
pub(crate) fn symbols_note(symbols: &[String]) -> String {
    format!(
        "symbolic dims evaluated at 1 in the estimate: {} (pin them with --input-shape NAME=D,D,…)",
        symbols.join(", ")
    )
}
