//! The symbol table: instrument symbols interned into dense [`KeyId`]s, kept off the hot path.
//!
//! A source keeps a private [`Interner`] (a hash map it alone touches) and only takes the shared table's
//! lock the first time it sees a symbol. Sinks read ids back into text through a [`SymbolCache`] that
//! copies new entries from the shared table when an id it does not know yet turns up. Ids are global
//! across sources, so the same symbol from two sources lands on the same shard.

use crate::event::KeyId;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// The shared, append-only table of symbols.
#[derive(Debug, Default)]
pub struct Symbols {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    names: Vec<Arc<str>>,
    ids: FxHashMap<Arc<str>, KeyId>,
}

impl Symbols {
    pub fn new() -> Arc<Symbols> {
        Arc::new(Symbols::default())
    }

    /// The id of `name`, assigning the next one if it is new. `None` past `limit` symbols.
    pub fn intern(&self, name: &str, limit: usize) -> Option<KeyId> {
        let mut t = self.inner.lock().expect("symbol table poisoned");
        if let Some(&id) = t.ids.get(name) {
            return Some(id);
        }
        if t.names.len() >= limit {
            return None;
        }
        let id = t.names.len() as KeyId;
        let name: Arc<str> = Arc::from(name);
        t.names.push(name.clone());
        t.ids.insert(name, id);
        Some(id)
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
        for i in 0..n {
            let at = d.pos();
            let b = d.blob("symbol")?;
            let name = std::str::from_utf8(b)
                .map_err(|_| DecodeError::Invalid { at, what: format!("symbol {i} is not UTF-8") })?;
            match self.intern(name, limit) {
                Some(id) if id as usize == i => {}
                Some(id) => {
                    return Err(DecodeError::Invalid {
                        at,
                        what: format!("symbol `{name}` listed twice (ids {id} and {i})"),
                    })
                }
                None => {
                    return Err(DecodeError::Mismatch {
                        what: "pipeline.max_instruments",
                        expected: limit.to_string(),
                        found: format!("at least {n}"),
                    })
                }
            }
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
}
