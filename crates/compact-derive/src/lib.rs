//! `#[derive(Compact)]` for the `compact` crate.
//!
//! This crate is a thin `proc-macro` shell: the code generation lives in plain
//! functions that take a parsed [`syn::DeriveInput`] and return
//! `syn::Result<proc_macro2::TokenStream>`, so every error becomes a
//! `compile_error!` spanned on the offending part of the user's type.
//!
//! - `derive` checks the input and assembles the impl;
//! - `attrs` reads `#[compact(crate = "...")]` and `#[repr(...)]`;
//! - `fields` generates the per-field code shared by structs and enum variants;
//! - `structs` and `enums` generate the method bodies for each kind of type.

mod attrs;
mod derive;
mod enums;
mod fields;
mod structs;

use proc_macro::TokenStream;

/// Derives `compact::Compact` for a struct or an enum whose fields are all `Compact`.
///
/// - Structs (named, tuple and unit) lay out the dynamic parts of their fields
///   in declaration order.
/// - Enums need a primitive integer representation (`#[repr(u8)]`,
///   `#[repr(u16)]`, `#[repr(i32)]`, ...) so that received bytes can be
///   validated: the tag is checked against every variant's discriminant.
/// - Every type parameter gets a `Compact` bound; lifetime parameters and
///   unions are rejected.
/// - `#[compact(crate = "path::to::compact")]` overrides the path of the
///   `compact` crate (by default `::compact`, or `::kay::compact` for crates
///   that depend only on `kay`).
#[proc_macro_derive(Compact, attributes(compact))]
pub fn derive_compact(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    derive::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
