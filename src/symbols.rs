//! The symbol table: instrument symbols interned into dense [`KeyId`]s, kept off the hot path.
//!
//! A source keeps a private [`Interner`] (a hash map it alone touches) and only takes the shared table's
//! lock the first time it sees a symbol. Sinks read ids back into text through a [`SymbolCache`] that
//! copies new entries from the shared table when an id it does not know yet turns up. Ids are global
//! across sources, so the same symbol from two sources lands on the same shard.

use crate::event::KeyId;
use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// The shared, append-only table of symbols.
#[derive(Debug, Default)]
pub struct Symbols {
    inner: Mutex<Table>,
}

/// Names by id, and ids by name. The index holds only the ids (4 bytes a slot, hashed through `names`):
/// a map keyed by the names themselves was six times larger, and filling it dominated the restore of a
/// million symbols.
#[derive(Debug, Default)]
struct Table {
    names: Vec<Arc<str>>,
    index: HashTable<KeyId>,
}

impl Table {
    fn find(&self, name: &str) -> Option<KeyId> {
        let names = &self.names;
        self.index.find(FxBuildHasher.hash_one(name), |&id| &*names[id as usize] == name).copied()
    }

    /// Appends `name` (not present) as the next id.
    fn push(&mut self, name: &str) -> KeyId {
        let id = self.names.len() as KeyId;
        let names = &self.names;
        self.index.insert_unique(FxBuildHasher.hash_one(name), id, |&i| FxBuildHasher.hash_one(&*names[i as usize]));
        self.names.push(Arc::from(name));
        id
    }

    fn reserve(&mut self, n: usize) {
        self.names.reserve(n);
        let names = &self.names;
        self.index.reserve(n, |&i| FxBuildHasher.hash_one(&*names[i as usize]));
    }
}

impl Symbols {
    pub fn new() -> Arc<Symbols> {
        Arc::new(Symbols::default())
    }

    /// The id of `name`, assigning the next one if it is new. `None` past `limit` symbols.
    pub fn intern(&self, name: &str, limit: usize) -> Option<KeyId> {
        let mut t = self.inner.lock().expect("symbol table poisoned");
        if let Some(id) = t.find(name) {
            return Some(id);
        }
        if t.names.len() >= limit {
            return None;
        }
        Some(t.push(name))
    }

    /// The ids of `n` symbols at once, under one lock, assigning new ones in order: for a source that knows
    /// its symbols up front (a million one `intern` at a time cost most of a restore). `name(i, buf)` writes
    /// the i-th symbol into `buf`. `None` past `limit`.
    pub fn intern_all(&self, n: usize, limit: usize, mut name: impl FnMut(usize, &mut String)) -> Option<Vec<KeyId>> {
        let mut t = self.inner.lock().expect("symbol table poisoned");
        let mut out = Vec::with_capacity(n);
        t.reserve(n);
        let mut buf = String::new();
        for i in 0..n {
            buf.clear();
            name(i, &mut buf);
            let id = match t.find(&buf) {
                Some(id) => id,
                None if t.names.len() >= limit => return None,
                None => t.push(&buf),
            };
            out.push(id);
        }
        Some(out)
    }

    /// The symbol of `id`, if assigned.
    pub fn name(&self, id: KeyId) -> Option<Arc<str>> {
        self.inner.lock().expect("symbol table poisoned").names.get(id as usize).cloned()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("symbol table poisoned").names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checkpoint form: the symbols in id order.
    pub fn encode(&self, e: &mut crate::checkpoint::codec::Enc) {
        let t = self.inner.lock().expect("symbol table poisoned");
        e.len_of(t.names.len());
        for n in &t.names {
            e.blob(n.as_bytes());
        }
    }

    /// Interns the symbols a checkpoint holds into this (empty) table, so that every id means what it meant
    /// when the checkpoint was taken.
    pub fn restore(
        &self,
        d: &mut crate::checkpoint::codec::Dec<'_>,
        limit: usize,
    ) -> Result<(), crate::checkpoint::codec::DecodeError> {
        use crate::checkpoint::codec::DecodeError;
        let n = d.count(8, "symbols")?;
        if n > limit {
            return Err(DecodeError::Mismatch {
                what: "pipeline.max_instruments",
                expected: limit.to_string(),
                found: format!("at least {n}"),
            });
        }
        // One lock and one reservation for the whole table.
        let mut t = self.inner.lock().expect("symbol table poisoned");
        t.reserve(n);
        for i in 0..n {
            let at = d.pos();
            let b = d.blob("symbol")?;
            let name = std::str::from_utf8(b)
                .map_err(|_| DecodeError::Invalid { at, what: format!("symbol {i} is not UTF-8") })?;
            if let Some(id) = t.find(name) {
                return Err(DecodeError::Invalid {
                    at,
                    what: format!("symbol `{name}` listed twice (ids {id} and {i})"),
                });
            }
            t.push(name);
        }
        Ok(())
    }

    /// All symbols from `from` on (for caches catching up).
    fn tail(&self, from: usize, into: &mut Vec<Arc<str>>) {
        let t = self.inner.lock().expect("symbol table poisoned");
        into.extend(t.names[from.min(t.names.len())..].iter().cloned());
    }
}

/// A source's private view: bytes → id without locking or allocating once a symbol is known.
#[derive(Debug)]
pub struct Interner {
    shared: Arc<Symbols>,
    local: FxHashMap<Box<[u8]>, KeyId>,
    limit: usize,
}

impl Interner {
    pub fn new(shared: Arc<Symbols>, limit: usize) -> Self {
        Self { shared, local: FxHashMap::default(), limit }
    }

    /// The id of a symbol given as bytes (must be UTF-8; the caller checks). `None` if the table is full.
    #[inline]
    pub fn id(&mut self, sym: &[u8]) -> Option<KeyId> {
        if let Some(&id) = self.local.get(sym) {
            return Some(id);
        }
        self.slow(sym)
    }

    #[cold]
    fn slow(&mut self, sym: &[u8]) -> Option<KeyId> {
        let name = std::str::from_utf8(sym).ok()?;
        let id = self.shared.intern(name, self.limit)?;
        self.local.insert(sym.into(), id);
        Some(id)
    }

    pub fn shared(&self) -> &Arc<Symbols> {
        &self.shared
    }

    /// The symbols' limit (`pipeline.max_instruments`).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// A sink's private view: id → symbol text without locking once an id is known.
#[derive(Debug)]
pub struct SymbolCache {
    shared: Arc<Symbols>,
    names: Vec<Arc<str>>,
}

impl SymbolCache {
    pub fn new(shared: Arc<Symbols>) -> Self {
        Self { shared, names: Vec::new() }
    }

    #[inline]
    pub fn get(&mut self, id: KeyId) -> &str {
        if id as usize >= self.names.len() {
            self.shared.tail(self.names.len(), &mut self.names);
        }
        self.names.get(id as usize).map_or("?", |s| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_shared_and_limited() {
        let s = Symbols::new();
        let mut a = Interner::new(s.clone(), 3);
        let mut b = Interner::new(s.clone(), 3);
        assert_eq!(a.id(b"AAPL"), Some(0));
        assert_eq!(b.id(b"MSFT"), Some(1));
        assert_eq!(b.id(b"AAPL"), Some(0));
        assert_eq!(a.id(b"MSFT"), Some(1));
        assert_eq!(a.id(b"X"), Some(2));
        assert_eq!(a.id(b"Y"), None);
        let mut c = SymbolCache::new(s);
        assert_eq!(c.get(1), "MSFT");
        assert_eq!(c.get(9), "?");
    }

    #[test]
    fn intern_all_keeps_known_ids_and_assigns_new_ones_in_order() {
        let s = Symbols::new();
        assert_eq!(s.intern("B", 4), Some(0));
        let names = ["A", "B", "C"];
        assert_eq!(s.intern_all(3, 4, |i, buf| buf.push_str(names[i])), Some(vec![1, 0, 2]));
        assert_eq!(s.intern("C", 4), Some(2));
        assert_eq!(s.intern_all(2, 4, |i, buf| buf.push_str(["D", "E"][i])), None, "past the limit");
        let mut e = crate::checkpoint::codec::Enc::new();
        s.encode(&mut e);
        let bytes = e.into_vec();
        let t = Symbols::new();
        t.restore(&mut crate::checkpoint::codec::Dec::new(&bytes), 8).unwrap();
        assert_eq!(
            (0..t.len() as KeyId).map(|i| t.name(i).unwrap().to_string()).collect::<Vec<_>>(),
            ["B", "A", "C", "D"]
        );
        assert_eq!(t.intern("D", 8), Some(3));
        assert!(Symbols::new().restore(&mut crate::checkpoint::codec::Dec::new(&bytes), 3).is_err());
    }
}
