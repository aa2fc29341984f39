//! One applied (or rejected) rewrite, as the report shows it.

/// What a rewrite did, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub pass: &'static str,
    pub rule: &'static str,
    /// Names of the nodes the rule matched.
    pub matched: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// One line for a person, e.g. "folded BN 'bn3' into conv 'conv3'".
    pub note: String,
}

impl Change {
    /// A change for `rule` of `pass`, matched on `matched`.
    pub fn new(pass: &'static str, rule: &'static str, matched: &[&str], note: String) -> Change {
        Change {
            pass,
            rule,
            matched: matched.iter().map(|s| s.to_string()).collect(),
            added: Vec::new(),
            removed: Vec::new(),
            note,
        }
    }

    pub fn removed(mut self, names: &[&str]) -> Change {
        self.removed.extend(names.iter().map(|s| s.to_string()));
        self
    }

    pub fn added(mut self, names: &[&str]) -> Change {
        self.added.extend(names.iter().map(|s| s.to_string()));
        self
    }
}

/// A rule that matched but did not fire, and why (for the report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub pass: &'static str,
    pub rule: &'static str,
    pub node: String,
    pub reason: String,
}

impl std::fmt::Display for Change {
    /// `pass/rule [matched…] note (removed: …) (added: …)`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} [{}] {}",
            self.pass,
            self.rule,
            self.matched.join(", "),
            self.note
        )?;
        if !self.removed.is_empty() {
            write!(f, " (removed: {})", self.removed.join(", "))?;
        }
        if !self.added.is_empty() {
            write!(f, " (added: {})", self.added.join(", "))?;
        }
        Ok(())
    }
}

/// The text of a pass snapshot: the change list, then the line diff of the
/// IR dumps before and after (see [`npuopt_ir::dump::diff`]).
pub fn snapshot_text(before: &str, after: &str, changes: &[Change]) -> String {
    let mut s = String::from("changes:\n");
    for c in changes {
        s.push_str(&format!("  {c}\n"));
    }
    s.push_str("diff:\n");
    s.push_str(&npuopt_ir::dump::diff(before, after));
    s
}
