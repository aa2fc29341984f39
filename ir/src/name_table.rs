//! Value name → id, eight bytes an entry.
//!
//! The table was a `HashMap<Name, ValueId>`: 40 bytes an entry (a [`Name`]
//! is a 32-byte shared slice), ~160 MB for the 2.3 M values of a 1 M-node
//! graph (bench/scaling), and every probe that matched a tag read the key's
//! bytes through its pointer. An entry here is the name's 32-bit hash and
//! the id; a probe compares the hashes and only then the value's own name
//! (`values[id].name`), so a lookup reads the name's bytes once, and the
//! table is a fifth of the size (it fits the caches up to ~200k values).
//!
//! An entry whose value was removed is stale: it matches no lookup (its
//! value has no name to compare) and is skipped by every reader; the
//! caller counts them and calls [`NameTable::drop_stale`] when they pile up.

use std::hash::BuildHasher;

use crate::ids::ValueId;
use crate::name::Name;
use crate::value::Value;

#[derive(Clone, Default)]
pub(crate) struct NameTable {
    /// (hash of the name, the value it names).
    table: hashbrown::HashTable<(u32, ValueId)>,
    /// Seeded per table: nothing iterates it in an order that reaches the
    /// output.
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for NameTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NameTable({} entries)", self.table.len())
    }
}

/// The table's 64-bit hash of a stored 32-bit one: the low bits pick the
/// bucket and the top seven are hashbrown's tag, so both come from the 32.
fn spread(h: u32) -> u64 {
    (h as u64) << 32 | h as u64
}

impl NameTable {
    pub(crate) fn hash(&self, name: &str) -> u32 {
        let h = self.hasher.hash_one(name);
        (h ^ (h >> 32)) as u32
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |&(h, _)| spread(h));
    }

    /// The live value named `name`.
    pub(crate) fn get(&self, values: &[Option<Value>], name: &str) -> Option<ValueId> {
        self.get_hashed(values, name, self.hash(name))
    }

    /// [`NameTable::get`] with `name`'s hash already computed.
    pub(crate) fn get_hashed(
        &self,
        values: &[Option<Value>],
        name: &str,
        h: u32,
    ) -> Option<ValueId> {
        self.table
            .find(spread(h), |&(eh, id)| {
                eh == h
                    && values[id.index()]
                        .as_ref()
                        .is_some_and(|v| v.name.as_str() == name)
            })
            .map(|&(_, id)| id)
    }

    /// Adds an entry: the caller has checked that no live value has the
    /// name whose hash is `h`.
    pub(crate) fn insert_hashed(&mut self, h: u32, id: ValueId) {
        self.table
            .insert_unique(spread(h), (h, id), |&(h, _)| spread(h));
    }

    /// Points the entry of `name`, now `from`'s, at `to` (a rename that
    /// moves a name from one value to another).
    pub(crate) fn repoint(&mut self, name: &Name, from: ValueId, to: ValueId) {
        let h = self.hash(name);
        if let Some(e) = self
            .table
            .find_mut(spread(h), |&(eh, id)| eh == h && id == from)
        {
            e.1 = to;
        }
    }

    /// Drops the entries of removed values.
    pub(crate) fn drop_stale(&mut self, values: &[Option<Value>]) {
        self.table.retain(|(_, id)| values[id.index()].is_some());
    }

    /// Every entry: (hash, id).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, ValueId)> + '_ {
        self.table.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_tag_and_the_bucket_bits() {
        let h = 0xdead_beef;
        assert_eq!(spread(h) >> 57, (h >> 25) as u64);
        assert_eq!(spread(h) as u32, h);
    }
}
