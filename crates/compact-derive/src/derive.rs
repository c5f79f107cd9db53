//! Checks the input of `#[derive(Compact)]` and assembles the impl.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Generics, Path, parse_quote};

use crate::fields::local;
use crate::{attrs, enums, structs};

/// The generated parts of a `Compact` impl, filled in per kind of type.
///
/// The bodies refer to the methods' parameters through [`local`] names:
/// `source`, `dest`, `new_dynamic_part`, `ptr` and `validator`.
pub(crate) struct Body {
    /// The value of `IS_STATIC`.
    pub(crate) is_static: TokenStream,
    /// The value of `PROCESS_LOCAL`.
    pub(crate) process_local: TokenStream,
    /// The value of `PADDING_FREE`.
    pub(crate) padding_free: TokenStream,
    /// The body of `is_still_compact(&self)`.
    pub(crate) is_still_compact: TokenStream,
    /// The body of `dynamic_size_bytes(&self)`.
    pub(crate) dynamic_size_bytes: TokenStream,
    /// The body of `compact`. A value with padding is copied field by
    /// field (and each dynamic part placed) from `source` to `dest`, so
    /// that `dest`'s padding bytes are never written and stay initialised
    /// where `dest` was (a whole-value copy would carry the source's
    /// uninitialised padding into buffers that are later read as bytes:
    /// outboxes, `Compacted::as_bytes`); one without is copied whole.
    pub(crate) compact: TokenStream,
    /// The body of `decompact(source)` (inside an `unsafe` block).
    pub(crate) decompact: TokenStream,
    /// The body of `validate(ptr, validator)` (inside an `unsafe` block).
    pub(crate) validate: TokenStream,
    /// Helper items placed next to the impl (layout shadows of enum variants).
    pub(crate) helper_items: TokenStream,
}

/// Expands `#[derive(Compact)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    reject_lifetimes(&input.generics)?;
    let options = attrs::compact_options(&input.attrs)?;
    let krate = attrs::compact_crate_path(&options);
    let body = match &input.data {
        Data::Struct(data) => {
            reject_packed(input)?;
            structs::body(&krate, data)?
        }
        Data::Enum(data) => enums::body(&krate, input, data)?,
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "#[derive(Compact)] does not support unions: nothing records which field \
                 is active, so a union can be neither compacted nor validated; use an enum \
                 with #[repr(u8)] instead",
            ));
        }
    };
    Ok(assemble(&krate, input, body))
}

/// Lifetimes are rejected: a compact value owns all its data, so it can be
/// moved into one byte range and rebuilt from received bytes.
fn reject_lifetimes(generics: &Generics) -> syn::Result<()> {
    match generics.lifetimes().next() {
        Some(param) => Err(syn::Error::new_spanned(
            &param.lifetime,
            format!(
                "#[derive(Compact)] does not support lifetime parameters: a compact value \
                 owns all its data, so it can be moved into one byte range and rebuilt from \
                 received bytes; remove `{}` and own the data (e.g. CString instead of &str, \
                 CVec<T> instead of &[T])",
                param.lifetime
            ),
        )),
        None => Ok(()),
    }
}

/// `#[repr(packed)]` fields may be unaligned, but `Compact` methods take aligned pointers.
fn reject_packed(input: &DeriveInput) -> syn::Result<()> {
    match attrs::repr(&input.attrs)?.packed {
        Some(packed) => Err(syn::Error::new_spanned(
            packed,
            "#[derive(Compact)] does not support #[repr(packed)]: its fields may be \
             unaligned, but compacting and validating a field needs an aligned pointer",
        )),
        None => Ok(()),
    }
}

/// `Compact::FIELDS`: the fields as declared (`{a: u32, b: CVec<u8>}`,
/// `(u32, u8)`; an enum's variants `A | B(u32) | C{x: u8}`), with types
/// as written in the source (spaces removed).
fn fields_text(data: &Data) -> String {
    use quote::ToTokens;
    fn of(fields: &syn::Fields) -> String {
        let list = |named: bool| {
            fields
                .iter()
                .map(|f| {
                    // Without the token printer's spaces: `CVec<u64>`.
                    let ty = f.ty.to_token_stream().to_string().replace(' ', "");
                    match (&f.ident, named) {
                        (Some(name), true) => format!("{name}: {ty}"),
                        _ => ty,
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match fields {
            syn::Fields::Named(_) => format!("{{{}}}", list(true)),
            syn::Fields::Unnamed(_) => format!("({})", list(false)),
            syn::Fields::Unit => String::new(),
        }
    }
    match data {
        Data::Struct(data) => of(&data.fields),
        Data::Enum(data) => data
            .variants
            .iter()
            .map(|v| format!("{}{}", v.ident, of(&v.fields)))
            .collect::<Vec<_>>()
            .join(" | "),
        Data::Union(_) => String::new(),
    }
}

/// Every type parameter gets a `Compact` bound.
fn add_compact_bounds(krate: &Path, generics: &Generics) -> Generics {
    let mut generics = generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(parse_quote!(#krate::Compact));
    }
    generics
}

/// Wraps the bodies into the impl, inside an anonymous `const` so that helper
/// items do not leak into the user's module.
fn assemble(krate: &Path, input: &DeriveInput, body: Body) -> TokenStream {
    let ident = &input.ident;
    let fields = fields_text(&input.data);
    let generics = add_compact_bounds(krate, &input.generics);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let (source, dest, new_dynamic_part) =
        (local("source"), local("dest"), local("new_dynamic_part"));
    let (ptr, validator) = (local("ptr"), local("validator"));
    let Body {
        is_static,
        process_local,
        padding_free,
        is_still_compact,
        dynamic_size_bytes,
        compact,
        decompact,
        validate,
        helper_items,
    } = body;

    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
        const _: () = {
            #helper_items

            #[automatically_derived]
            #[allow(
                unused_variables,
                unused_mut,
                unused_unsafe,
                clippy::undocumented_unsafe_blocks,
                clippy::unnecessary_cast,
                clippy::identity_op,
                clippy::needless_return,
                clippy::nonminimal_bool,
                clippy::ptr_as_ptr,
                clippy::borrow_as_ptr,
            )]
            unsafe impl #impl_generics #krate::Compact for #ident #ty_generics #where_clause {
                const FIELDS: &'static ::core::primitive::str = #fields;
                const IS_STATIC: ::core::primitive::bool = #is_static;
                const PROCESS_LOCAL: ::core::primitive::bool = #process_local;
                const PADDING_FREE: ::core::primitive::bool = #padding_free;

                #[inline]
                fn is_still_compact(&self) -> ::core::primitive::bool {
                    #is_still_compact
                }

                #[inline]
                fn dynamic_size_bytes(&self) -> ::core::primitive::usize {
                    #dynamic_size_bytes
                }

                unsafe fn compact(
                    #source: *mut Self,
                    #dest: *mut Self,
                    #new_dynamic_part: *mut ::core::primitive::u8,
                ) {
                    // SAFETY: the caller upholds `Compact::compact`'s contract: `source`
                    // and `dest` are equal or disjoint, so are their fields, and
                    // `new_dynamic_part` has room for `dynamic_size_bytes` bytes, which
                    // the fields fill in order.
                    unsafe {
                        #compact
                    }
                }

                unsafe fn decompact(#source: *const Self) -> Self {
                    // SAFETY: `source` points to a valid `Self` (caller's contract), so
                    // every field does too; each is moved out exactly once.
                    unsafe { #decompact }
                }

                unsafe fn validate(
                    #ptr: *mut Self,
                    #validator: &mut #krate::Validator<'_>,
                ) -> ::core::result::Result<(), #krate::ValidationError> {
                    // SAFETY: `ptr` is aligned and valid for `size_of::<Self>()` bytes
                    // (caller's contract); every field pointer stays inside them.
                    unsafe { #validate }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn error(input: DeriveInput) -> String {
        expand(&input).unwrap_err().to_string()
    }

    #[test]
    fn unions_are_rejected() {
        let message = error(parse_quote!(union U { a: u32, b: f32 }));
        assert!(
            message.starts_with("#[derive(Compact)] does not support unions"),
            "{message}"
        );
    }

    #[test]
    fn lifetimes_are_rejected() {
        let message = error(parse_quote!(
            struct S<'a, T> {
                a: &'a T,
            }
        ));
        assert!(
            message.contains("does not support lifetime parameters"),
            "{message}"
        );
        assert!(message.contains("remove `'a`"), "{message}");
    }

    #[test]
    fn packed_structs_are_rejected() {
        let message = error(parse_quote!(
            #[repr(C, packed(2))]
            struct S {
                a: u8,
                b: u64,
            }
        ));
        assert!(
            message.contains("does not support #[repr(packed)]"),
            "{message}"
        );
    }

    #[test]
    fn enums_without_variants_are_rejected() {
        let message = error(parse_quote!(
            enum Never {}
        ));
        assert!(message.contains("enums without variants"), "{message}");
    }

    #[test]
    fn type_parameters_get_a_compact_bound() {
        let input: DeriveInput = parse_quote!(
            struct S<A: Clone, const N: usize, B = u8>(A, [B; N]);
        );
        let generics = add_compact_bounds(&parse_quote!(::compact), &input.generics);
        let (impl_generics, _, _) = generics.split_for_impl();
        let expected =
            quote!(<A: Clone + ::compact::Compact, const N: usize, B: ::compact::Compact>);
        assert_eq!(quote!(#impl_generics).to_string(), expected.to_string());
    }

    #[test]
    fn crate_path_can_be_overridden() {
        let input: DeriveInput = parse_quote!(
            #[compact(crate = "kay::compact")]
            struct S {
                a: u8,
            }
        );
        let output = expand(&input).unwrap().to_string();
        assert!(output.contains(&quote!(unsafe impl kay::compact::Compact for S).to_string()));
    }
}
