//! `#[kay::implements] impl X for Name { .. }`: keeps the impl, converts
//! `NameID` into `XID`, and registers `X`'s handlers on class `Name` whenever
//! `ActorSystem::register::<Name>()` runs (through an `inventory` entry, so
//! the impl can live in any module or crate).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, Item, ItemImpl, Type, TypePath};

use crate::handler::mark_inline;
use crate::ids::{id_into_trait_id, id_path};
use crate::message::local;

/// Expands `#[kay::implements]` on `item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            &attr,
            "#[kay::implements] takes no arguments",
        ));
    }
    let mut imp = match syn::parse2::<Item>(item)? {
        Item::Impl(imp) => imp,
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[kay::implements] goes on an `impl ActorTrait for Class { .. }` block",
            ));
        }
    };
    check_impl(&imp)?;
    for item in &mut imp.items {
        if let ImplItem::Fn(f) = item {
            mark_inline(&mut f.attrs);
        }
    }
    let (trait_path, self_ty) = check_impl(&imp)?;
    let trait_id = id_path(trait_path, "trait")?;
    let class_id = id_path(self_ty, "type")?;
    let conversion = id_into_trait_id(&class_id, &trait_id);
    let (class, setup, system) = (local("class"), local("setup"), local("system"));
    let ty = &imp.self_ty;
    // Spanned on the self type and the trait: a class that is not an actor,
    // or a trait that is not an actor trait, is reported there.
    let register = quote_spanned! {trait_path.span()=>
        #trait_id::__kay_register_implementor::<#ty>
    };
    let class_setup = quote_spanned! {ty.span()=>
        ::kay::ActorSystem::class::<#ty>(#system)
    };
    Ok(quote! {
        #imp

        #conversion

        const _: () = {
            fn #class() -> ::core::any::TypeId {
                ::core::any::TypeId::of::<#ty>()
            }
            fn #setup(#system: &mut ::kay::ActorSystem) {
                #register(&mut #class_setup);
            }
            ::kay::private::inventory::submit! {
                ::kay::private::TraitImpl { class: #class, setup: #setup }
            }
        };
    })
}

/// The trait's path and the class's path, after rejecting what cannot be
/// an actor trait implementation.
fn check_impl(imp: &ItemImpl) -> syn::Result<(&syn::Path, &syn::Path)> {
    let Some((negative, trait_path, _)) = &imp.trait_ else {
        return Err(syn::Error::new_spanned(
            &imp.self_ty,
            "#[kay::implements] goes on an `impl ActorTrait for Class` block; for the class's \
             own handlers (`impl Class { .. }`), use #[kay::actor]",
        ));
    };
    if let Some(bang) = negative {
        return Err(syn::Error::new(
            bang.span,
            "#[kay::implements] does not take negative impls",
        ));
    }
    if !imp.generics.params.is_empty() || imp.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &imp.generics,
            "an actor trait implementation cannot be generic: kay registers the trait's \
             handlers on each concrete actor class; write one impl per class",
        ));
    }
    if let Some(token) = &imp.unsafety {
        return Err(syn::Error::new(
            token.span,
            "#[kay::implements] does not take an `unsafe impl`",
        ));
    }
    match &*imp.self_ty {
        Type::Path(TypePath { qself: None, path }) => Ok((trait_path, path)),
        other => Err(syn::Error::new(
            other.span(),
            "#[kay::implements] needs an actor class named by a path: `impl Trait for Name`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn converts_ids_and_submits_the_registration() {
        let tokens = expand(
            TokenStream::new(),
            quote! {
                impl a::Listener for Logger {
                    fn hear(&mut self, n: u32, _: &mut World) {}
                }
            },
        )
        .unwrap();
        let text = tokens.to_string();
        for needle in [
            "impl a :: Listener for Logger",
            "impl :: core :: convert :: From < LoggerID > for a :: ListenerID",
            "a :: ListenerID :: __kay_register_implementor :: < Logger >",
            ":: kay :: private :: inventory :: submit !",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
    }

    #[test]
    fn rejects_inherent_generic_and_negative_impls() {
        for item in [
            quote!(impl Logger {}),
            quote!(
                impl<T> Listener for Box<T> {}
            ),
            quote!(impl Listener for Box<u32> {}),
            quote!(
                fn f() {}
            ),
        ] {
            assert!(expand(TokenStream::new(), item).is_err());
        }
    }
}
