//! `CString`: a UTF-8 string that can live in compact form.

use std::fmt;
use std::ops::Deref;

use crate::cvec::CVec;
use crate::traits::Compact;
use crate::validate::{ValidationError, Validator};

/// A growable UTF-8 string that can live in compact form; it derefs to `str`.
///
/// ```
/// use compact::CString;
/// let mut s = CString::from("hello");
/// s.push_str(", world");
/// assert_eq!(&*s, "hello, world");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CString(CVec<u8>);

impl CString {
    /// An empty string.
    pub const fn new() -> Self {
        CString(CVec::new())
    }

    /// An empty string with heap room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        CString(CVec::with_capacity(capacity))
    }

    /// The string slice.
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes are UTF-8: every constructor and mutator keeps
        // that invariant, and `validate` checks it for received bytes.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// Appends a string slice.
    pub fn push_str(&mut self, s: &str) {
        self.0.extend(s.as_bytes());
    }

    /// Appends a character.
    pub fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Removes and returns the last character.
    pub fn pop(&mut self) -> Option<char> {
        let c = self.as_str().chars().next_back()?;
        self.0.truncate(self.len() - c.len_utf8());
        Some(c)
    }

    /// Shortens the string to `new_len` bytes.
    ///
    /// # Panics
    /// If `new_len` is not on a char boundary.
    pub fn truncate(&mut self, new_len: usize) {
        if new_len < self.len() {
            assert!(
                self.is_char_boundary(new_len),
                "new_len is not on a char boundary"
            );
            self.0.truncate(new_len);
        }
    }

    /// Removes all characters.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl Deref for CString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for CString {
    fn as_ref(&self) -> &str {
        self
    }
}

impl std::borrow::Borrow<str> for CString {
    fn borrow(&self) -> &str {
        self
    }
}

impl fmt::Debug for CString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for CString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for CString {
    fn from(s: &str) -> Self {
        CString(s.as_bytes().into())
    }
}

impl From<String> for CString {
    fn from(s: String) -> Self {
        CString(s.into_bytes().into())
    }
}

impl From<CString> for String {
    fn from(s: CString) -> Self {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for CString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for CString {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl fmt::Write for CString {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl FromIterator<char> for CString {
    fn from_iter<I: IntoIterator<Item = char>>(iter: I) -> Self {
        let mut s = CString::new();
        s.extend(iter);
        s
    }
}

impl Extend<char> for CString {
    fn extend<I: IntoIterator<Item = char>>(&mut self, iter: I) {
        for c in iter {
            self.push(c);
        }
    }
}

impl<'a> Extend<&'a str> for CString {
    fn extend<I: IntoIterator<Item = &'a str>>(&mut self, iter: I) {
        for s in iter {
            self.push_str(s);
        }
    }
}

impl std::str::FromStr for CString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

// SAFETY: exactly the layout of the inner `CVec<u8>`; `validate` adds the
// UTF-8 check that `as_str` relies on.
unsafe impl Compact for CString {
    const PADDING_FREE: bool = true;

    fn is_still_compact(&self) -> bool {
        self.0.is_still_compact()
    }

    fn dynamic_size_bytes(&self) -> usize {
        self.0.dynamic_size_bytes()
    }

    unsafe fn compact(source: *mut Self, dest: *mut Self, new_dynamic_part: *mut u8) {
        // SAFETY: forwarded with the caller's guarantees (`CString` is a newtype).
        unsafe { CVec::compact(&raw mut (*source).0, &raw mut (*dest).0, new_dynamic_part) }
    }

    unsafe fn decompact(source: *const Self) -> Self {
        // SAFETY: forwarded with the caller's guarantees.
        CString(unsafe { CVec::decompact(&raw const (*source).0) })
    }

    unsafe fn validate(
        ptr: *mut Self,
        validator: &mut Validator<'_>,
    ) -> Result<(), ValidationError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { CVec::validate(&raw mut (*ptr).0, validator)? };
        // SAFETY: the inner CVec<u8> was just validated, so it is a valid value.
        std::str::from_utf8(unsafe { &(*ptr).0 })?;
        Ok(())
    }
}
