//! Method bodies for enums with a primitive integer representation.
//!
//! A `#[repr(u8)]` (or other integer repr) enum has a defined layout (Rust
//! reference, "Primitive representation of enums with fields"): every variant
//! is laid out as a `#[repr(C)]` struct whose first field is the tag and whose
//! further fields are the variant's fields. Validation reads the tag, checks it
//! against every variant's discriminant and finds each field's offset through
//! a *layout shadow*: a hidden `#[repr(C)]` tuple struct `(Tag, F1, F2, ..)`
//! per data-carrying variant.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote};
use syn::{DataEnum, DeriveInput, Ident, Index, Path, Variant};

use crate::attrs;
use crate::derive::Body;
use crate::fields::{self, Field, local};

/// The message for an enum without an integer representation.
const NEEDS_REPR: &str = "#[derive(Compact)] on an enum needs a defined layout so received \
                          bytes can be validated: add #[repr(u8)] (or another integer repr)";

/// One variant with the pieces every method needs.
struct VariantInfo<'a> {
    variant: &'a Variant,
    fields: Vec<Field<'a>>,
    /// The name of the `const` holding the variant's discriminant.
    discriminant: Ident,
    /// The layout shadow, for variants with fields.
    shadow: Option<Ident>,
}

impl VariantInfo<'_> {
    /// `Self::V { 0: __compact_field_0, .. }`, usable for tuple, named and unit variants.
    fn pattern(&self) -> TokenStream {
        let ident = &self.variant.ident;
        let bindings = self.fields.iter().map(|field| {
            let (member, binding) = (&field.member, &field.binding);
            quote!(#member: #binding)
        });
        quote!(Self::#ident { #(#bindings),* })
    }
}

/// Generates the method bodies of `Compact` for an enum.
pub(crate) fn body(krate: &Path, input: &DeriveInput, data: &DataEnum) -> syn::Result<Body> {
    if data.variants.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Compact)] does not support enums without variants",
        ));
    }
    let tag = tag_type(input, data)?;
    let variants = data
        .variants
        .iter()
        .enumerate()
        .map(|(index, variant)| {
            attrs::reject_compact_attrs(&variant.attrs)?;
            let fields = fields::collect(&variant.fields)?;
            let shadow = (!fields.is_empty())
                .then(|| format_ident!("__CompactShadow_{}_{}", input.ident, variant.ident));
            Ok(VariantInfo {
                variant,
                fields,
                discriminant: format_ident!("__COMPACT_DISCRIMINANT_{}", index),
                shadow,
            })
        })
        .collect::<syn::Result<Vec<_>>>()?;

    let is_static = fields::all_static(krate, variants.iter().flat_map(|info| &info.fields));

    Ok(Body {
        // The bytes between the tag and a variant's fields are padding.
        padding_free: quote!(false),
        is_static,
        process_local: fields::any_process_local(
            krate,
            variants.iter().flat_map(|info| &info.fields),
        ),
        is_still_compact: per_variant(&variants, quote!(self), |info| {
            fields::all_still_compact(krate, &info.fields, binding)
        }),
        dynamic_size_bytes: per_variant(&variants, quote!(self), |info| {
            fields::sum_dynamic_size(krate, &info.fields, binding)
        }),
        compact: compact(krate, input, &tag, &variants),
        decompact: decompact(krate, &variants),
        validate: validate(krate, input, &tag, &variants),
        helper_items: shadows(input, &tag, &variants),
    })
}

/// The enum's integer representation, e.g. `u8` for `#[repr(u8)]`.
fn tag_type(input: &DeriveInput, data: &DataEnum) -> syn::Result<Ident> {
    let repr = attrs::repr(&input.attrs)?;
    let enum_token = data.enum_token;
    let ident = &input.ident;
    match (repr.integers.as_slice(), repr.c) {
        ([int], false) => Ok(int.clone()),
        (ints, true) if !ints.is_empty() => Err(syn::Error::new_spanned(
            quote!(#enum_token #ident),
            format!(
                "{NEEDS_REPR}; #[repr(C, {})] lays variants out differently and is \
                 not supported: use #[repr({})] alone",
                ints[0], ints[0]
            ),
        )),
        _ => Err(syn::Error::new_spanned(
            quote!(#enum_token #ident),
            NEEDS_REPR,
        )),
    }
}

/// A field's pattern binding, which is a reference to the field.
fn binding(field: &Field<'_>) -> TokenStream {
    let binding = &field.binding;
    quote!(#binding)
}

/// `match scrutinee { pattern => arm(variant), .. }` over all variants.
fn per_variant(
    variants: &[VariantInfo<'_>],
    scrutinee: TokenStream,
    arm: impl Fn(&VariantInfo<'_>) -> TokenStream,
) -> TokenStream {
    let arms = variants.iter().map(|info| {
        let pattern = info.pattern();
        let body = arm(info);
        quote!(#pattern => { #body })
    });
    quote!(match #scrutinee { #(#arms)* })
}

/// `compact`: copy the tag, then compact the active variant's fields one by
/// one, from `source` to `dest` at the offsets of its layout shadow (as
/// `validate` finds them): the padding between tag and fields is never
/// written (see the struct case).
fn compact(
    krate: &Path,
    input: &DeriveInput,
    tag: &Ident,
    variants: &[VariantInfo<'_>],
) -> TokenStream {
    let (source, dest, tag_value) = (local("source"), local("dest"), local("__compact_tag"));
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let consts = discriminant_consts(tag, variants);
    let place = |base: &Ident, info: &VariantInfo<'_>, field: &Field<'_>| {
        let shadow = info
            .shadow
            .as_ref()
            .expect("a variant with fields has a shadow");
        let index = Index::from(shadow_index(field, &info.fields));
        let ty = field.ty;
        quote! {
            #base
                .cast::<::core::primitive::u8>()
                .add(::core::mem::offset_of!(#shadow #ty_generics, #index))
                .cast::<#ty>()
        }
    };
    let arms = variants.iter().map(|info| {
        let discriminant = &info.discriminant;
        let fields = fields::compact_each(
            krate,
            &info.fields,
            |field| place(&source, info, field),
            |field| place(&dest, info, field),
        );
        quote! {
            if #tag_value == #discriminant {
                #fields
            }
        }
    });
    quote! {
        #consts
        let #tag_value: ::core::primitive::#tag = #source.cast::<::core::primitive::#tag>().read();
        #dest.cast::<::core::primitive::#tag>().write(#tag_value);
        #(#arms)*
    }
}

/// `decompact`: rebuild the active variant from its decompacted fields.
fn decompact(krate: &Path, variants: &[VariantInfo<'_>]) -> TokenStream {
    let source = local("source");
    per_variant(variants, quote!(&*#source), |info| {
        let ident = &info.variant.ident;
        let inits = fields::decompact_each(krate, &info.fields, |field| {
            let binding = &field.binding;
            quote!(::core::ptr::from_ref(#binding))
        });
        quote!(Self::#ident { #inits })
    })
}

/// `validate`: read the tag, find its variant and validate that variant's
/// fields at the offsets of its layout shadow.
fn validate(
    krate: &Path,
    input: &DeriveInput,
    tag: &Ident,
    variants: &[VariantInfo<'_>],
) -> TokenStream {
    let (ptr, tag_value) = (local("ptr"), local("__compact_tag"));
    let (_, ty_generics, _) = input.generics.split_for_impl();
    let consts = discriminant_consts(tag, variants);
    let checks = variants.iter().map(|info| {
        let discriminant = &info.discriminant;
        let fields = match &info.shadow {
            None => TokenStream::new(),
            Some(shadow) => fields::validate_each(krate, &info.fields, |field| {
                let index = Index::from(shadow_index(field, &info.fields));
                let ty = field.ty;
                quote! {
                    #ptr
                        .cast::<::core::primitive::u8>()
                        .add(::core::mem::offset_of!(#shadow #ty_generics, #index))
                        .cast::<#ty>()
                }
            }),
        };
        quote! {
            if #tag_value == #discriminant {
                #fields
                return ::core::result::Result::Ok(());
            }
        }
    });
    quote! {
        #consts
        let #tag_value: ::core::primitive::#tag = #ptr.cast::<::core::primitive::#tag>().read();
        #(#checks)*
        ::core::result::Result::Err(#krate::ValidationError::InvalidDiscriminant {
            type_name: ::core::any::type_name::<Self>(),
            value: #tag_value as ::core::primitive::i128,
        })
    }
}

/// The position of `field` in its variant's layout shadow (the tag is at 0).
fn shadow_index(field: &Field<'_>, fields: &[Field<'_>]) -> usize {
    1 + fields
        .iter()
        .position(|other| other.binding == field.binding)
        .expect("field belongs to the variant")
}

/// One `const` per variant with its discriminant: an explicit `= expr` as
/// written (rustc already types it as the repr), an implicit one as the
/// previous discriminant plus one, the first as 0.
fn discriminant_consts(tag: &Ident, variants: &[VariantInfo<'_>]) -> TokenStream {
    let mut previous: Option<&Ident> = None;
    let consts = variants.iter().map(|info| {
        let name = &info.discriminant;
        let value = match (&info.variant.discriminant, previous) {
            (Some((_, expr)), _) => quote!(#expr),
            (None, Some(previous)) => quote!(#previous.wrapping_add(1)),
            (None, None) => quote!(0),
        };
        previous = Some(name);
        quote!(const #name: ::core::primitive::#tag = #value;)
    });
    quote!(#(#consts)*)
}

/// The layout shadow of every data-carrying variant:
/// `#[repr(C)] struct Shadow<G>(Tag, F1, .., PhantomData<fn() -> (*const T, ..)>);`.
///
/// The trailing zero-sized `PhantomData` uses every type parameter without
/// changing the offsets before it.
fn shadows(input: &DeriveInput, tag: &Ident, variants: &[VariantInfo<'_>]) -> TokenStream {
    let generics = &input.generics;
    let (_, ty_generics, where_clause) = generics.split_for_impl();
    let enum_ident = &input.ident;
    // `Self` in a field type means the enum, not the shadow.
    let self_type = quote!(#enum_ident #ty_generics);
    let type_params = generics.type_params().map(|param| &param.ident);
    let phantom = quote!(::core::marker::PhantomData<fn() -> (#(*const #type_params,)*)>);
    let structs = variants.iter().filter_map(|info| {
        let shadow = info.shadow.as_ref()?;
        let types = info
            .fields
            .iter()
            .map(|field| replace_self(field.ty.to_token_stream(), &self_type));
        Some(quote! {
            #[repr(C)]
            #[allow(dead_code)]
            struct #shadow #generics (::core::primitive::#tag, #(#types,)* #phantom) #where_clause;
        })
    });
    quote!(#(#structs)*)
}

/// Replaces every `Self` in `tokens` with `replacement`.
fn replace_self(tokens: TokenStream, replacement: &TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) if ident == "Self" => replacement.clone(),
            TokenTree::Group(group) => {
                let mut new =
                    Group::new(group.delimiter(), replace_self(group.stream(), replacement));
                new.set_span(group.span());
                TokenTree::Group(new).into()
            }
            other => other.into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use syn::{Data, DeriveInput, parse_quote};

    use super::*;

    fn tag_of(input: &DeriveInput) -> syn::Result<Ident> {
        let Data::Enum(data) = &input.data else {
            panic!("not an enum")
        };
        tag_type(input, data)
    }

    #[test]
    fn integer_reprs_give_the_tag_type() {
        let input: DeriveInput = parse_quote!(
            #[repr(i16)]
            enum E {
                A,
            }
        );
        assert_eq!(tag_of(&input).unwrap(), "i16");
        let input: DeriveInput = parse_quote!(
            #[repr(u32, align(8))]
            enum E {
                A(u8),
            }
        );
        assert_eq!(tag_of(&input).unwrap(), "u32");
        let input: DeriveInput = parse_quote!(
            #[derive(Clone)]
            #[repr(u8)]
            #[repr(align(4))]
            enum E {
                A,
            }
        );
        assert_eq!(tag_of(&input).unwrap(), "u8");
    }

    #[test]
    fn enums_without_an_integer_repr_are_rejected() {
        for input in [
            parse_quote!(
                enum E {
                    A,
                }
            ),
            parse_quote!(
                #[repr(C)]
                enum E {
                    A,
                }
            ),
            parse_quote!(
                #[repr(align(8))]
                enum E {
                    A,
                }
            ),
        ] {
            let error = tag_of(&input).unwrap_err().to_string();
            assert_eq!(error, NEEDS_REPR);
        }
        let error = tag_of(&parse_quote!(
            #[repr(C, u8)]
            enum E {
                A,
            }
        ))
        .unwrap_err()
        .to_string();
        assert!(error.starts_with(NEEDS_REPR), "{error}");
        assert!(error.contains("use #[repr(u8)] alone"), "{error}");
    }

    #[test]
    fn discriminants_count_on_from_the_previous_one() {
        let input: DeriveInput = parse_quote!(
            #[repr(i8)]
            enum E {
                A,
                B = -3,
                C,
                D(u8) = 10,
                E,
            }
        );
        let Data::Enum(data) = &input.data else {
            unreachable!()
        };
        let variants: Vec<_> = data
            .variants
            .iter()
            .enumerate()
            .map(|(index, variant)| VariantInfo {
                variant,
                fields: Vec::new(),
                discriminant: format_ident!("D{}", index),
                shadow: None,
            })
            .collect();
        let tag = format_ident!("i8");
        let expected = quote! {
            const D0: ::core::primitive::i8 = 0;
            const D1: ::core::primitive::i8 = -3;
            const D2: ::core::primitive::i8 = D1.wrapping_add(1);
            const D3: ::core::primitive::i8 = 10;
            const D4: ::core::primitive::i8 = D3.wrapping_add(1);
        };
        assert_eq!(
            discriminant_consts(&tag, &variants).to_string(),
            expected.to_string()
        );
    }

    #[test]
    fn self_in_field_types_becomes_the_enum() {
        let replacement = quote!(Tree<T>);
        let replaced = replace_self(quote!(CVec<(Self, [Self; 2])>), &replacement);
        assert_eq!(
            replaced.to_string(),
            quote!(CVec<(Tree<T>, [Tree<T>; 2])>).to_string()
        );
    }

    #[test]
    fn data_variants_get_a_layout_shadow() {
        let input: DeriveInput = parse_quote! {
            #[repr(u16)]
            enum E<T, const N: usize> { A, B(T, [u8; N]), C { x: CVec<Self> } }
        };
        let output = crate::derive::expand(&input).unwrap().to_string();
        let shadow_b = quote! {
            #[repr(C)]
            #[allow(dead_code)]
            struct __CompactShadow_E_B<T, const N: usize>(
                ::core::primitive::u16,
                T,
                [u8; N],
                ::core::marker::PhantomData<fn() -> (*const T,)>
            );
        };
        assert!(output.contains(&shadow_b.to_string()), "{output}");
        // `Self` in a field type of the shadow is replaced by the enum.
        assert!(output.contains("CVec < E < T , N > >"), "{output}");
        assert!(!output.contains("__CompactShadow_E_A"), "{output}");
    }
}
