//! Per-field code shared by structs and enum variants.
//!
//! Every function takes the fields of one struct or variant and a closure
//! that says how to reach a field: `&self.a` or a pattern binding for shared
//! access, `&raw mut (*dest).a` or a converted binding for raw access. All
//! calls go through `<FieldType as Compact>::...`, so a field type that is
//! not `Compact` is reported on the field type.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Member, Path, Type};

use crate::attrs;

/// One field of a struct or enum variant.
pub(crate) struct Field<'a> {
    /// How the field is named in a field expression or pattern (`a` or `0`).
    pub(crate) member: Member,
    /// The field's type, with the user's spans.
    pub(crate) ty: &'a Type,
    /// The local variable an enum pattern binds the field to.
    pub(crate) binding: Ident,
}

/// Collects the fields of a struct or variant, rejecting `#[compact]` on them.
pub(crate) fn collect(fields: &syn::Fields) -> syn::Result<Vec<Field<'_>>> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            attrs::reject_compact_attrs(&field.attrs)?;
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index {
                    index: index as u32,
                    span: field.ty.span(),
                }),
            };
            let binding = local(&format!("__compact_field_{index}"));
            Ok(Field {
                member,
                ty: &field.ty,
                binding,
            })
        })
        .collect()
}

/// A local variable or parameter of the generated code. Its mixed-site span
/// keeps it apart from any name in the user's tokens (field types,
/// discriminant expressions).
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// `<Ty as Compact>` for a field, spanned on the field type.
///
/// This is the per-field assertion: every field's type goes through it at
/// least once (in `IS_STATIC`), so a type that is not `Compact` is reported
/// on the field type, once (rustc merges the identical errors of all uses).
fn as_compact(krate: &Path, ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> <#ty as #krate::Compact>)
}

/// `IS_STATIC` of all the fields, AND-ed (`true` for no fields).
pub(crate) fn all_static<'a, 'f: 'a>(
    krate: &Path,
    fields: impl IntoIterator<Item = &'a Field<'f>>,
) -> TokenStream {
    let terms = fields.into_iter().map(|field| {
        let ty = as_compact(krate, field.ty);
        quote!(#ty::IS_STATIC)
    });
    and_all(terms)
}

/// `PROCESS_LOCAL` of all the fields, OR-ed (`false` for no fields).
pub(crate) fn any_process_local<'a, 'f: 'a>(
    krate: &Path,
    fields: impl IntoIterator<Item = &'a Field<'f>>,
) -> TokenStream {
    let terms = fields.into_iter().map(|field| {
        let ty = as_compact(krate, field.ty);
        quote!(#ty::PROCESS_LOCAL)
    });
    quote!(false #(|| #terms)*)
}

/// `is_still_compact` of all the fields, AND-ed; `access` gives a `&Field`.
pub(crate) fn all_still_compact(
    krate: &Path,
    fields: &[Field<'_>],
    access: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    let terms = fields.iter().map(|field| {
        let ty = as_compact(krate, field.ty);
        let access = access(field);
        quote!(#ty::is_still_compact(#access))
    });
    and_all(terms)
}

/// `dynamic_size_bytes` of all the fields, summed; `access` gives a `&Field`.
pub(crate) fn sum_dynamic_size(
    krate: &Path,
    fields: &[Field<'_>],
    access: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    let terms: Vec<_> = fields
        .iter()
        .map(|field| {
            let ty = as_compact(krate, field.ty);
            let access = access(field);
            quote!(#ty::dynamic_size_bytes(#access))
        })
        .collect();
    if terms.is_empty() {
        quote!(0)
    } else {
        quote!(#(#terms)+*)
    }
}

/// Statements that compact every field in place, laying their dynamic parts
/// out in declaration order behind `new_dynamic_part`; `place` gives a
/// `*mut Field` into the (already bitwise copied) destination.
pub(crate) fn compact_in_place(
    krate: &Path,
    fields: &[Field<'_>],
    place: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    if fields.is_empty() {
        return TokenStream::new();
    }
    let new_dynamic_part = local("new_dynamic_part");
    let offset = local("__compact_offset");
    let field_ptr = local("__compact_field");
    let size = local("__compact_size");
    let steps = fields.iter().enumerate().map(|(i, field)| {
        let ty = field.ty;
        let compact = as_compact(krate, ty);
        let place = place(field);
        // Whether a later field has a dynamic part to place behind this
        // one's: a constant. The last dynamic field's size is never
        // needed, which keeps compacting a deep chain (`Node(CVec<Tree>)`)
        // linear instead of measuring the rest of the chain at every level.
        let later = fields[i + 1..].iter().map(|f| {
            let compact = as_compact(krate, f.ty);
            quote!(!#compact::IS_STATIC)
        });
        let later = quote!(false #(|| #later)*);
        quote! {
            if !#compact::IS_STATIC {
                let #field_ptr: *mut #ty = #place;
                // The size must be taken before the field is moved.
                let #size = if #later {
                    #compact::dynamic_size_bytes(&*#field_ptr)
                } else {
                    0
                };
                #compact::compact(#field_ptr, #field_ptr, #new_dynamic_part.add(#offset));
                #offset += #size;
            }
        }
    });
    quote! {
        let mut #offset: ::core::primitive::usize = 0;
        #(#steps)*
    }
}

/// Statements that compact every field from `source_place` to `dest_place`
/// (equal, or disjoint), static fields too, laying the dynamic parts out in
/// declaration order behind `new_dynamic_part`. Padding between the fields
/// is never written.
pub(crate) fn compact_each(
    krate: &Path,
    fields: &[Field<'_>],
    source_place: impl Fn(&Field<'_>) -> TokenStream,
    dest_place: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    if fields.is_empty() {
        return TokenStream::new();
    }
    let new_dynamic_part = local("new_dynamic_part");
    let offset = local("__compact_offset");
    let (from, to) = (local("__compact_from"), local("__compact_to"));
    let size = local("__compact_size");
    let steps = fields.iter().enumerate().map(|(i, field)| {
        let ty = field.ty;
        let compact = as_compact(krate, ty);
        let (source_place, dest_place) = (source_place(field), dest_place(field));
        // Whether a later field has a dynamic part to place behind this
        // one's: a constant. The last dynamic field's size is never
        // needed, which keeps compacting a deep chain (`Node(CVec<Tree>)`)
        // linear instead of measuring the rest of the chain at every level.
        let later = fields[i + 1..].iter().map(|f| {
            let compact = as_compact(krate, f.ty);
            quote!(!#compact::IS_STATIC)
        });
        let later = quote!(false #(|| #later)*);
        quote! {
            let #from: *mut #ty = #source_place;
            let #to: *mut #ty = #dest_place;
            if #compact::IS_STATIC {
                #compact::compact(#from, #to, #new_dynamic_part);
            } else {
                // The size must be taken before the field is moved.
                let #size = if #later {
                    #compact::dynamic_size_bytes(&*#from)
                } else {
                    0
                };
                #compact::compact(#from, #to, #new_dynamic_part.add(#offset));
                #offset += #size;
            }
        }
    });
    quote! {
        let mut #offset: ::core::primitive::usize = 0;
        #(#steps)*
    }
}

/// `member: Ty::decompact(ptr),` for every field; `place` gives a `*const Field`.
pub(crate) fn decompact_each(
    krate: &Path,
    fields: &[Field<'_>],
    place: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    let inits = fields.iter().map(|field| {
        let member = &field.member;
        let compact = as_compact(krate, field.ty);
        let place = place(field);
        quote!(#member: #compact::decompact(#place))
    });
    quote!(#(#inits),*)
}

/// Statements that validate every field in declaration order, returning the
/// first error; `place` gives a `*mut Field`.
pub(crate) fn validate_each(
    krate: &Path,
    fields: &[Field<'_>],
    place: impl Fn(&Field<'_>) -> TokenStream,
) -> TokenStream {
    let validator = local("validator");
    let steps = fields.iter().map(|field| {
        let compact = as_compact(krate, field.ty);
        let place = place(field);
        quote!(#compact::validate(#place, #validator)?;)
    });
    quote!(#(#steps)*)
}

/// `a && b && ...`, or `true` for no terms.
fn and_all(terms: impl Iterator<Item = TokenStream>) -> TokenStream {
    let terms: Vec<_> = terms.collect();
    if terms.is_empty() {
        quote!(true)
    } else {
        quote!(#(#terms)&&*)
    }
}

/// `PADDING_FREE` of a struct or variant: no bytes between or after the
/// fields (their sizes add up to the whole) and none inside any field.
pub(crate) fn padding_free(krate: &Path, fields: &[Field<'_>]) -> TokenStream {
    let sizes = fields.iter().map(|f| {
        let ty = f.ty;
        quote!(::core::mem::size_of::<#ty>())
    });
    let inner = fields.iter().map(|f| {
        let compact = as_compact(krate, f.ty);
        quote!(#compact::PADDING_FREE)
    });
    quote!(::core::mem::size_of::<Self>() == 0 #(+ #sizes)* #(&& #inner)*)
}
