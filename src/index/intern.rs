//! String interning for names that repeat across many objects (namespaces, node names,
//! label keys and values, port names). A 150k-pod cluster has a few thousand distinct
//! such strings but hundreds of thousands of references to them.

use std::collections::HashSet;
use std::sync::Arc;

/// Hands out one shared `Arc<str>` per distinct string.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    pub(crate) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(existing) = self.strings.get(s) {
            return Arc::clone(existing);
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&new));
        new
    }

    /// Drops strings nothing else refers to any more (node names of removed nodes, …),
    /// so churn does not grow the interner without bound.
    pub(crate) fn collect_garbage(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_shares_one_allocation_and_garbage_is_collected() {
        let mut interner = Interner::default();
        let a = interner.get("default");
        let b = interner.get("default");
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        interner.get("other");
        interner.collect_garbage();
        assert!(interner.strings.is_empty());
    }
}
