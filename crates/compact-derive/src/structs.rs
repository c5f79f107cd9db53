//! Method bodies for structs (named, tuple and unit).

use quote::quote;
use syn::{DataStruct, Path};

use crate::derive::Body;
use crate::fields::{self, local};

/// Generates the method bodies of `Compact` for a struct.
///
/// The fields' dynamic parts are laid out in declaration order; validation
/// checks the fields in the same order. `compact` copies field by field, so
/// padding bytes of the destination are never written (a whole-struct copy
/// would carry the source's uninitialised padding into buffers that are
/// later read as bytes: outboxes, `Compacted::as_bytes`).
pub(crate) fn body(krate: &Path, data: &DataStruct) -> syn::Result<Body> {
    let fields = fields::collect(&data.fields)?;
    let (source, dest, ptr) = (local("source"), local("dest"), local("ptr"));

    let shared = |field: &fields::Field<'_>| {
        let member = &field.member;
        quote!(&self.#member)
    };
    let in_place = fields::compact_in_place(krate, &fields, |field| {
        let member = &field.member;
        quote!(&raw mut (*#dest).#member)
    });
    let compact_fields = fields::compact_each(
        krate,
        &fields,
        |field| {
            let member = &field.member;
            quote!(&raw mut (*#source).#member)
        },
        |field| {
            let member = &field.member;
            quote!(&raw mut (*#dest).#member)
        },
    );
    let decompact_fields = fields::decompact_each(krate, &fields, |field| {
        let member = &field.member;
        quote!(&raw const (*#source).#member)
    });
    let validate_fields = fields::validate_each(krate, &fields, |field| {
        let member = &field.member;
        quote!(&raw mut (*#ptr).#member)
    });

    Ok(Body {
        is_static: fields::all_static(krate, &fields),
        process_local: fields::any_process_local(krate, &fields),
        is_still_compact: fields::all_still_compact(krate, &fields, shared),
        dynamic_size_bytes: fields::sum_dynamic_size(krate, &fields, shared),
        padding_free: fields::padding_free(krate, &fields),
        compact: quote! {
            if <Self as #krate::Compact>::PADDING_FREE {
                // Copied whole (no byte of it is padding), then the dynamic
                // fields in place.
                if !::core::ptr::eq(#source, #dest) {
                    ::core::ptr::copy_nonoverlapping(#source, #dest, 1);
                }
                #in_place
            } else {
                #compact_fields
            }
        },
        decompact: quote!(Self { #decompact_fields }),
        validate: quote!(#validate_fields ::core::result::Result::Ok(())),
        helper_items: proc_macro2::TokenStream::new(),
    })
}
