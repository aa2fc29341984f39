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
