//! Process-wide sharing of values that repeat across many objects: a namespace's name and its
//! labels are the same in every Service of the namespace, and a member keeps one request per
//! Service. Interned, each distinct value is held once however many objects carry it.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Most entries an interner holds before it first looks for values nobody uses any more.
const FIRST_SWEEP: usize = 1024;

/// A set of shared values: [`Interner::intern`] gives the copy already held when there is one.
///
/// Values nobody else holds any more are dropped when the set has doubled since the last sweep,
/// so the set stays within twice the values in use and a sweep's cost is spread over the
/// insertions that led to it.
pub struct Interner<T: ?Sized> {
    inner: Mutex<Entries<T>>,
}

struct Entries<T: ?Sized> {
    set: HashSet<Arc<T>>,
    sweep_at: usize,
}

impl<T: ?Sized + Hash + Eq> Interner<T> {
    /// An empty interner (usable in a `static`).
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Entries {
                set: HashSet::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// The shared copy of `value`: the one already held if there is one (and `value` is
    /// dropped), else `value`, held from now on.
    pub fn intern(&self, value: Arc<T>) -> Arc<T> {
        // The set holds only complete values; a panic elsewhere while holding the lock leaves
        // it usable.
        let mut e = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = e.set.get(&*value) {
            return Arc::clone(held);
        }
        e.set.insert(Arc::clone(&value));
        if e.set.len() >= e.sweep_at {
            e.set.retain(|v| Arc::strong_count(v) > 1);
            e.sweep_at = (e.set.len() * 2).max(FIRST_SWEEP);
        }
        value
    }

    /// How many values the interner holds (some may be unused until the next sweep).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set
            .len()
    }

    /// Whether the interner holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: ?Sized + Hash + Eq> Default for Interner<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy() {
        let i: Interner<str> = Interner::new();
        let a = i.intern(Arc::from("shop"));
        let b = i.intern(Arc::from(String::from("shop")));
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern(Arc::from("web"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn values_nobody_holds_are_swept_as_the_set_grows() {
        let i: Interner<str> = Interner::new();
        let kept = i.intern(Arc::from("kept"));
        for n in 0..10 * FIRST_SWEEP {
            drop(i.intern(Arc::from(format!("gone-{n}"))));
        }
        // Never more than twice what is in use (here: one value) plus the first sweep's room.
        assert!(i.len() <= FIRST_SWEEP, "{} entries", i.len());
        assert!(Arc::ptr_eq(&kept, &i.intern(Arc::from("kept"))));
    }
}
