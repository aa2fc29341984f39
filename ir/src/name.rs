//! Value and node names, shared rather than copied.
//!
//! A [`Name`] is UTF-8 text held in a [`Bytes`]: a name decoded from a
//! model is a slice of the file's own buffer (no allocation, no copy), and
//! cloning one — into the name table, into a node's wiring — only bumps a
//! reference count. On a 1M-node graph the `String` names were two
//! allocations per value (the value's own and the name table's key) and a
//! large share of import's time and memory.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

/// UTF-8 text in a shared buffer. Compares, orders and hashes as the `str`
/// it holds, so a table keyed by `Name` is searched with a `&str`.
#[derive(Clone, Default)]
pub struct Name(Bytes);

impl Name {
    /// `bytes` as a name, if they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Name, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Name(bytes))
    }

    /// A name of static text (no allocation).
    pub fn from_static(s: &'static str) -> Name {
        Name(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks (or starts from) valid UTF-8,
        // and the bytes are immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::from(s.as_str())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.as_str().to_string()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        // Clones of one name share their bytes: no need to read them.
        (self.0.as_ptr() == other.0.as_ptr() && self.0.len() == other.0.len()) || self.0 == other.0
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As the `str`: `Borrow<str>` lookups must hash the same way.
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_name_is_found_by_its_str() {
        let mut m: HashMap<Name, u32> = HashMap::new();
        m.insert(Name::from("conv.weight"), 1);
        m.insert(Name::from(String::from("x")), 2);
        assert_eq!(m.get("conv.weight"), Some(&1));
        assert_eq!(m.get("x"), Some(&2));
        assert_eq!(m.get("y"), None);
    }

    #[test]
    fn only_utf8_is_a_name() {
        assert!(Name::from_utf8(Bytes::from_static(b"\xff\xfe")).is_err());
        let n = Name::from_utf8(Bytes::from_static("héllo".as_bytes())).unwrap();
        assert_eq!(&*n, "héllo");
        assert_eq!(n.to_string(), "héllo");
        let (a, b) = (Name::from("a"), Name::from("b"));
        assert!(a < b);
    }
}
