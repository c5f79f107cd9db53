//! Recursion over deeply nested values without overflowing the stack.
//!
//! Compacting, measuring, dropping and cloning a value recurse once per level
//! of nested containers, so a legitimately deep recursive value (a tree of
//! depth 100,000, say) would exhaust a thread's stack and abort the process.
//! Every container operation that recurses into its elements runs through
//! [`guard`], which moves onto a fresh heap-allocated stack segment when
//! less than [`RED_ZONE`] bytes are left (the technique rustc uses, through
//! the `stacker` crate). One check per container level, not per element.
//!
//! On `wasm` targets, where switching stacks is not supported, and under
//! Miri, which cannot run `stacker`'s assembly, `guard` just calls the closure.

/// Stack left below which a nested level moves to a new segment.
#[cfg(not(any(target_family = "wasm", miri)))]
const RED_ZONE: usize = 64 * 1024;

/// The size of each new stack segment.
#[cfg(not(any(target_family = "wasm", miri)))]
const SEGMENT: usize = 1024 * 1024;

/// Runs `f`, on a new stack segment if this one is nearly used up.
#[inline]
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(not(any(target_family = "wasm", miri)))]
    {
        stacker::maybe_grow(RED_ZONE, SEGMENT, f)
    }
    #[cfg(any(target_family = "wasm", miri))]
    {
        f()
    }
}
