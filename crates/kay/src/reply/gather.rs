//! Gathering the answers of a request to a broadcast ID on one machine (see
//! [`crate::reply`]): each shard's world keeps a *partial* per request in
//! a message cycle; after the cycle the system joins the shards' partials
//! of each request into one and hands it to the reply table (or sends it
//! to the asking machine).
//!
//! Answers of a type registered with
//! [`ActorSystem::register_combine`](crate::ActorSystem::register_combine)
//! (e.g. [`Sum`], [`Min`], [`Max`] of numbers, registered from the start)
//! are combined as they come, so a machine's partial is one value however
//! many instances answered.

use std::any::{Any, TypeId};
use std::mem::ManuallyDrop;

use compact::Compact;

use super::ReplyToken;
#[cfg(feature = "net")]
use crate::World;
use crate::id::MachineID;

/// Answers that combine into one (associatively): a machine sends one
/// combined value per request to a broadcast ID instead of every answer.
/// Register the type on every machine with
/// [`ActorSystem::register_combine`](crate::ActorSystem::register_combine).
///
/// [`Reply::collect`](crate::Reply::collect) then gets one combined value
/// per machine; [`Reply::reduce`](crate::Reply::reduce) combines those.
pub trait Combine: Compact + Send + 'static {
    /// Adds `other` into `self`.
    fn combine(&mut self, other: Self);
}

/// The sum of the answers (a [`Combine`]).
#[derive(Compact, Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Sum<T>(pub T);

/// The least of the answers (a [`Combine`]).
#[derive(Compact, Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Min<T>(pub T);

/// The greatest of the answers (a [`Combine`]).
#[derive(Compact, Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Max<T>(pub T);

impl<T: Compact + Send + 'static + std::ops::Add<Output = T> + Copy> Combine for Sum<T> {
    #[inline]
    fn combine(&mut self, other: Self) {
        self.0 = self.0 + other.0;
    }
}

impl<T: std::ops::Add<Output = T>> std::ops::Add for Sum<T> {
    type Output = Sum<T>;
    fn add(self, other: Sum<T>) -> Sum<T> {
        Sum(self.0 + other.0)
    }
}

impl<T: Compact + Send + 'static + PartialOrd + Copy> Combine for Min<T> {
    #[inline]
    fn combine(&mut self, other: Self) {
        if other.0 < self.0 {
            self.0 = other.0;
        }
    }
}

impl<T: Compact + Send + 'static + PartialOrd + Copy> Combine for Max<T> {
    #[inline]
    fn combine(&mut self, other: Self) {
        if other.0 > self.0 {
            self.0 = other.0;
        }
    }
}

/// `T::combine` for a `T` behind the pointers: the first is combined with
/// the second, which is moved.
pub(crate) type CombineFn = unsafe fn(*mut (), *mut ());

/// # Safety
/// `into` and `from` point to valid `T`s; `*from` is moved (not used or
/// dropped again by the caller).
unsafe fn combine<T: Combine>(into: *mut (), from: *mut ()) {
    // SAFETY: caller.
    unsafe {
        let from = from.cast::<T>().read();
        (*into.cast::<T>()).combine(from);
    }
}

/// The combine function of `T`, registered by its `TypeId` (the table
/// lookup guarantees the type).
pub(crate) fn combine_fn<T: Combine>() -> (TypeId, CombineFn) {
    (TypeId::of::<T>(), combine::<T>)
}

/// The combines every system knows: [`Sum`], [`Min`] and [`Max`] of the
/// primitive numbers.
pub(crate) fn built_in_combines() -> Vec<(TypeId, CombineFn)> {
    macro_rules! numbers {
        ($($t:ty),*) => {
            vec![$(
                combine_fn::<Sum<$t>>(),
                combine_fn::<Min<$t>>(),
                combine_fn::<Max<$t>>(),
            )*]
        };
    }
    numbers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64)
}

/// Combines `value` into `into` right here if `T` is one of the built-in
/// combines ([`Sum`], [`Min`], [`Max`] of a primitive number; users cannot
/// give those another `Combine`), so that the handler's loop inlines it;
/// returns whether it did. For any other `T` the compiler folds this to
/// `false` (the type checks are constants).
#[inline(always)]
fn built_in<T: 'static>(into: &mut T, value: &T) -> bool {
    macro_rules! numbers {
        ($($t:ty),*) => {$(
            if let (Some(into), Some(value)) = (
                (into as &mut dyn Any).downcast_mut::<Sum<$t>>(),
                (value as &dyn Any).downcast_ref::<Sum<$t>>(),
            ) {
                into.combine(*value);
                return true;
            }
            if let (Some(into), Some(value)) = (
                (into as &mut dyn Any).downcast_mut::<Min<$t>>(),
                (value as &dyn Any).downcast_ref::<Min<$t>>(),
            ) {
                into.combine(*value);
                return true;
            }
            if let (Some(into), Some(value)) = (
                (into as &mut dyn Any).downcast_mut::<Max<$t>>(),
                (value as &dyn Any).downcast_ref::<Max<$t>>(),
            ) {
                into.combine(*value);
                return true;
            }
        )*};
    }
    numbers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);
    false
}

/// The answers of type `T` one world gathered for one request: every one,
/// or (with a combine) at most one, combined.
pub(crate) struct Gathered<T> {
    answers: Vec<T>,
    combine: Option<CombineFn>,
}

impl<T: Compact + Send + 'static> Gathered<T> {
    /// Empty; combining with `combine` if `T` has one (the caller looked
    /// it up by `T`'s `TypeId`).
    pub(crate) fn new(combine: Option<CombineFn>) -> Gathered<T> {
        Gathered {
            answers: Vec::new(),
            combine,
        }
    }

    /// Adds an answer.
    #[inline]
    pub(crate) fn add(&mut self, value: T) {
        match (self.combine, self.answers.first_mut()) {
            (Some(combine), Some(into)) => {
                if built_in(into, &value) {
                    return;
                }
                let mut value = ManuallyDrop::new(value);
                // SAFETY: `combine` is `T`'s (looked up by its `TypeId`);
                // both are valid `T`s, and `value` is moved in (never
                // dropped here).
                unsafe { combine((into as *mut T).cast(), (&mut *value as *mut T).cast()) }
            }
            _ => self.answers.push(value),
        }
    }
}

/// One world's answers to one gathered request in one message cycle.
pub(crate) struct Partial {
    pub(crate) token: ReplyToken,
    /// The asking machine.
    pub(crate) machine: MachineID,
    pub(crate) answers: Box<dyn Answers>,
}

/// A [`Gathered<T>`], whatever `T` is.
pub(crate) trait Answers: Send {
    /// The `Gathered<T>`, for a caller that checked `answer_type`.
    fn as_mut_ptr(&mut self) -> *mut ();
    /// `TypeId::of::<T>()`.
    fn answer_type(&self) -> TypeId;
    /// Adds `other`'s answers (if they are of the same type).
    fn append(&mut self, other: Box<dyn Answers>);
    /// The answers, as a boxed `Vec<T>`.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// Sends the answers to `machine` as one partial of `token`.
    #[cfg(feature = "net")]
    fn send_to(self: Box<Self>, world: &mut World, token: ReplyToken, machine: MachineID);
}

impl<T: Compact + Send + 'static> Answers for Gathered<T> {
    fn as_mut_ptr(&mut self) -> *mut () {
        (self as *mut Gathered<T>).cast()
    }
    fn answer_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn append(&mut self, mut other: Box<dyn Answers>) {
        if other.answer_type() != TypeId::of::<T>() {
            return;
        }
        // SAFETY: `other` is a `Gathered<T>` (checked just above).
        let other = unsafe { &mut *other.as_mut_ptr().cast::<Gathered<T>>() };
        for answer in other.answers.drain(..) {
            self.add(answer);
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.answers)
    }
    #[cfg(feature = "net")]
    fn send_to(self: Box<Self>, world: &mut World, token: ReplyToken, machine: MachineID) {
        world.send_partial(token, machine, self.answers);
    }
}

/// Where a world's last gathered answer went (see `World::reply`): an
/// answer to the same request, of the same type, goes there at once.
#[derive(Clone, Copy)]
pub(crate) struct LastGathered {
    pub(crate) token: ReplyToken,
    pub(crate) machine: MachineID,
    pub(crate) answer: TypeId,
    /// The `Gathered<T>`, boxed in the world's partials (which the system
    /// takes only together with this).
    pub(crate) at: *mut (),
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact::CVec;

    /// A combining answer that owns heap memory: combining moves `other`
    /// in through the type-erased function (Miri checks the move and the
    /// drops).
    #[derive(Compact, Clone, Debug, PartialEq)]
    struct Seen(CVec<u32>);

    impl Combine for Seen {
        fn combine(&mut self, other: Seen) {
            self.0.extend(other.0.iter().copied());
        }
    }

    fn answers<T: Compact + Send + 'static>(partial: Box<dyn Answers>) -> Vec<T> {
        *partial.into_any().downcast::<Vec<T>>().expect("a Vec<T>")
    }

    #[test]
    fn answers_combine_through_the_registered_function_or_are_kept() {
        let (_, seen) = combine_fn::<Seen>();
        let mut first = Gathered::<Seen>::new(Some(seen));
        first.add(Seen(vec![1, 2].into()));
        first.add(Seen(vec![3].into()));
        let mut second = Box::new(Gathered::<Seen>::new(Some(seen)));
        second.add(Seen(vec![4].into()));
        let mut first: Box<dyn Answers> = Box::new(first);
        first.append(second);
        // Another type is not appended (a forged token's answers).
        first.append(Box::new(Gathered::<u32>::new(None)));
        assert_eq!(answers::<Seen>(first), vec![Seen(vec![1, 2, 3, 4].into())]);

        let sum = built_in_combines()
            .into_iter()
            .find(|(t, _)| *t == TypeId::of::<Sum<u64>>())
            .map(|(_, f)| f);
        let mut sums = Gathered::<Sum<u64>>::new(sum);
        (1..=10).for_each(|n| sums.add(Sum(n)));
        assert_eq!(answers::<Sum<u64>>(Box::new(sums)), vec![Sum(55)]);

        let mut kept = Gathered::<CVec<u8>>::new(None);
        kept.add(vec![1u8].into());
        kept.add(vec![2u8, 3].into());
        let kept = answers::<CVec<u8>>(Box::new(kept));
        assert_eq!(kept.len(), 2);
    }
}
