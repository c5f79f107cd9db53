//! In-process leases: at most one holder per name at a time.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A set of names that are currently leased.
#[derive(Default)]
pub(crate) struct LeaseSet {
    held: Mutex<HashSet<String>>,
}

impl LeaseSet {
    /// Leases `name`, or returns `None` if it is already leased.
    pub(crate) fn try_lease(self: &Arc<Self>, name: String) -> Option<Lease> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(name.clone()).then(|| Lease {
            set: Arc::clone(self),
            name,
        })
    }
}

impl fmt::Debug for LeaseSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LeaseSet")
            .field("held", &held.len())
            .finish()
    }
}

/// A held name, released on drop.
pub(crate) struct Lease {
    set: Arc<LeaseSet>,
    name: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.set.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let set = Arc::new(LeaseSet::default());
        let a = set.try_lease("a".into()).unwrap();
        assert!(set.try_lease("a".into()).is_none());
        let _b = set.try_lease("b".into()).unwrap();
        drop(a);
        assert!(set.try_lease("a".into()).is_some());
    }
}
