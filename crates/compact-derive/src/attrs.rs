//! Attributes the derive reads: `#[compact(...)]` options and `#[repr(...)]`.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::Span;
use syn::{Attribute, Ident, LitStr, Path, parse_quote};

/// The options a type gives in its `#[compact(...)]` attributes.
#[derive(Default)]
pub(crate) struct CompactOptions {
    /// The path of the `compact` crate, from `#[compact(crate = "...")]`.
    pub(crate) crate_path: Option<Path>,
}

/// Parses all `#[compact(...)]` attributes of the type itself.
pub(crate) fn compact_options(attrs: &[Attribute]) -> syn::Result<CompactOptions> {
    let mut options = CompactOptions::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("compact")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                if options.crate_path.is_some() {
                    return Err(meta.error("duplicate `crate` option in #[compact(...)]"));
                }
                options.crate_path = Some(lit.parse()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[compact(...)] option; the only option is \
                     `crate = \"path::to::compact\"`",
                ))
            }
        })?;
    }
    Ok(options)
}

/// Rejects `#[compact(...)]` on fields and variants, where it has no meaning.
pub(crate) fn reject_compact_attrs(attrs: &[Attribute]) -> syn::Result<()> {
    match attrs.iter().find(|attr| attr.path().is_ident("compact")) {
        Some(attr) => Err(syn::Error::new_spanned(
            attr,
            "#[compact(...)] is only allowed on the type that derives Compact, \
             not on its fields or variants",
        )),
        None => Ok(()),
    }
}

/// The path of the `compact` crate as seen from the crate being compiled.
///
/// An explicit `#[compact(crate = "...")]` wins; otherwise a dependency on
/// `compact` (possibly renamed) gives `::compact`, a dependency on the `kay`
/// facade gives `::kay::compact`, and anything else falls back to `::compact`.
/// The `compact` crate itself declares `extern crate self as compact;`, so
/// `::compact` also works inside it and in its tests.
pub(crate) fn compact_crate_path(options: &CompactOptions) -> Path {
    if let Some(path) = &options.crate_path {
        return path.clone();
    }
    match crate_name("compact") {
        Ok(FoundCrate::Itself) => parse_quote!(::compact),
        Ok(FoundCrate::Name(name)) => {
            let name = Ident::new(&name, Span::call_site());
            parse_quote!(::#name)
        }
        Err(_) => match crate_name("kay") {
            Ok(FoundCrate::Itself) => parse_quote!(::kay::compact),
            Ok(FoundCrate::Name(name)) => {
                let name = Ident::new(&name, Span::call_site());
                parse_quote!(::#name::compact)
            }
            Err(_) => parse_quote!(::compact),
        },
    }
}

/// The primitive integer types an enum's `#[repr(...)]` may name.
const INTEGER_REPRS: [&str; 12] = [
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

/// What the `#[repr(...)]` attributes of a type say.
#[derive(Default)]
pub(crate) struct Repr {
    /// Every primitive integer named, e.g. `u8` in `#[repr(u8)]`.
    pub(crate) integers: Vec<Ident>,
    /// Whether `C` is named.
    pub(crate) c: bool,
    /// The `packed` or `packed(N)` hint, if any.
    pub(crate) packed: Option<Ident>,
}

/// Parses all `#[repr(...)]` attributes.
pub(crate) fn repr(attrs: &[Attribute]) -> syn::Result<Repr> {
    let mut repr = Repr::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            let Some(ident) = meta.path.get_ident() else {
                return Err(meta.error("unexpected path in #[repr(...)]"));
            };
            if INTEGER_REPRS.iter().any(|int| ident == int) {
                repr.integers.push(ident.clone());
            } else if ident == "C" {
                repr.c = true;
            } else if ident == "packed" {
                repr.packed = Some(ident.clone());
            }
            // `align(N)` and `packed(N)` carry an argument we do not need.
            if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            Ok(())
        })?;
    }
    Ok(repr)
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::{DeriveInput, parse_quote};

    use super::*;

    fn path_of(options: &CompactOptions) -> String {
        let path = compact_crate_path(options);
        quote!(#path).to_string()
    }

    #[test]
    fn crate_option_is_parsed() {
        let input: DeriveInput = parse_quote!(
            #[compact(crate = "::kay::compact")]
            struct S;
        );
        let options = compact_options(&input.attrs).unwrap();
        assert_eq!(path_of(&options), quote!(::kay::compact).to_string());
    }

    #[test]
    fn unknown_and_duplicate_options_are_rejected() {
        let input: DeriveInput = parse_quote!(
            #[compact(krate = "x")]
            struct S;
        );
        assert!(compact_options(&input.attrs).is_err());
        let input: DeriveInput = parse_quote!(
            #[compact(crate = "a")]
            #[compact(crate = "b")]
            struct S;
        );
        let error = compact_options(&input.attrs).err().unwrap().to_string();
        assert!(error.contains("duplicate"), "{error}");
    }

    #[test]
    fn crate_path_defaults_to_compact() {
        // This crate depends on neither `compact` nor `kay`.
        assert_eq!(
            path_of(&CompactOptions::default()),
            quote!(::compact).to_string()
        );
    }

    #[test]
    fn repr_hints_are_collected() {
        let input: DeriveInput = parse_quote!(
            #[repr(C, u8, align(4))]
            #[repr(packed(2))]
            struct S;
        );
        let repr = repr(&input.attrs).unwrap();
        assert!(repr.c);
        assert_eq!(repr.integers, ["u8"]);
        assert!(repr.packed.is_some());
    }
}
