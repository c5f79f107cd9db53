//! `#[kay::actor] impl Name { .. }`: the ID type, the `Actor` impl, one
//! message per handler and spawner, and the ID methods that send them.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, Item, ItemImpl, Type, TypePath};

use crate::handler::{Context, Errors, Method, classify_impl_fn, mark_inline};
use crate::ids::{id_ident, id_path, id_type, message_ident};
use crate::message::{
    existing_registration, id_method, local, message_struct, registration, world_param,
};

/// Expands `#[kay::actor]` on `item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(
            &attr,
            "#[kay::actor] takes no arguments",
        ));
    }
    let mut imp = match syn::parse2::<Item>(item)? {
        Item::Impl(imp) => imp,
        Item::Struct(s) => {
            return Err(syn::Error::new_spanned(
                &s.ident,
                format!(
                    "#[kay::actor] goes on the `impl {0} {{ .. }}` block with the handlers, not on \
                     the struct; the struct derives `Compact, Clone` and has a field `id: {0}ID`",
                    s.ident
                ),
            ));
        }
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[kay::actor] goes on an inherent `impl Name { .. }` block whose methods are \
                 the actor's handlers and spawners",
            ));
        }
    };
    check_impl(&imp)?;
    let name = class_name(&imp.self_ty)?;
    let id = id_ident(&name);
    let context = Context::Class {
        name: &name,
        id: &id,
    };
    let mut methods = Vec::new();
    for item in &mut imp.items {
        if let ImplItem::Fn(f) = item
            && let Some(Some(method)) =
                errors.keep(classify_impl_fn(&f.vis, &mut f.attrs, &f.sig, &context))
        {
            mark_inline(&mut f.attrs);
            methods.push(method);
        }
    }
    let generated = generate(&imp, &name, &id, &methods);
    let errors = errors.into_compile_errors();
    Ok(quote! {
        #errors
        #imp
        #generated
    })
}

/// Rejects trait impls, generic impls and other impl forms.
fn check_impl(imp: &ItemImpl) -> syn::Result<()> {
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[kay::actor] goes on the inherent `impl Name { .. }` block; for an \
             `impl Trait for Name` of an actor trait, use #[kay::implements]",
        ));
    }
    if !imp.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &imp.generics,
            "an actor class cannot be generic: kay registers one instance store per concrete \
             class; write `impl Name` for a concrete type (a type alias or a wrapper struct \
             can name one instantiation)",
        ));
    }
    if let Some(clause) = &imp.generics.where_clause {
        return Err(syn::Error::new_spanned(
            clause,
            "an actor class's impl block cannot have a `where` clause",
        ));
    }
    if let Some(token) = &imp.unsafety {
        return Err(syn::Error::new(
            token.span,
            "#[kay::actor] does not take an `unsafe impl`",
        ));
    }
    if let Some(token) = &imp.defaultness {
        return Err(syn::Error::new(
            token.span,
            "#[kay::actor] does not take a `default impl`",
        ));
    }
    Ok(())
}

/// The class's name: the last segment of the impl's self type, which must be
/// a plain path without generic arguments.
fn class_name(self_ty: &Type) -> syn::Result<syn::Ident> {
    match self_ty {
        Type::Path(TypePath { qself: None, path }) => {
            id_path(path, "type")?;
            Ok(path
                .segments
                .last()
                .expect("a non-empty path")
                .ident
                .clone())
        }
        other => Err(syn::Error::new(
            other.span(),
            "#[kay::actor] needs an impl block for a struct named by a path: `impl Name { .. }`",
        )),
    }
}

/// Everything generated for the class besides its impl block.
fn generate(imp: &ItemImpl, name: &syn::Ident, id: &syn::Ident, methods: &[Method]) -> TokenStream {
    let self_ty = &imp.self_ty;
    let class = local("class");
    let owner = name.to_string();
    let mut messages = TokenStream::new();
    let mut id_methods = TokenStream::new();
    let mut registrations = TokenStream::new();
    let actor = quote!(#self_ty);
    for method in methods {
        let msg = message_ident(name, &method.name);
        let method_name = &method.name;
        let call = quote!(<#self_ty>::#method_name);
        if method.existing {
            registrations.extend(existing_registration(&class, method, &actor, &call));
            continue;
        }
        messages.extend(message_struct(&msg, method));
        id_methods.extend(id_method(&msg, method, &owner, Some(name)));
        registrations.extend(registration(&class, &msg, method, &owner, &actor, &call));
    }
    let id_doc = format!(
        "The typed ID of a `{owner}` actor: a `Copy`, 8-byte address of one instance (or of \
         all instances, see `local_broadcast`), with one method per handler and spawner of \
         `{owner}`. Generated by `#[kay::actor]`."
    );
    let id_type = id_type(&syn::parse_quote!(pub), id, &id_doc);
    let world = world_param();
    let id_field = local("id");
    // Spanned on the self type: a missing or mistyped `id` field, or a
    // struct that is not `Compact`, is reported there.
    let actor_impl = quote_spanned! {self_ty.span()=>
        impl ::kay::Actor for #self_ty {
            type ID = #id;

            #[inline]
            fn id(&self) -> #id {
                let #self_ty { id: #id_field, .. } = self;
                ::kay::private::id_field::<#id, _>(#id_field)
            }

            fn setup(#class: &mut ::kay::ClassSetup<'_, Self>) {
                let _ = &mut *#class;
                #registrations
                {
                    // Panic reports show the actor if it implements `Debug`.
                    #[allow(unused_imports)]
                    use ::kay::private::{ProbeDebug as _, ProbeNoDebug as _};
                    if let ::core::option::Option::Some(__kay_format) =
                        (&&::kay::private::Probe::<Self>::NEW).kay_debug()
                    {
                        #class.debug_state_with(__kay_format);
                    }
                }
            }
        }
    };
    let local_doc = format!(
        "The ID addressing every `{owner}` on this machine: a message sent to it is handled \
         once by each instance."
    );
    let global_doc = format!(
        "The ID addressing every `{owner}` on every machine: a message sent to it is handled \
         once by each instance."
    );
    quote! {
        #id_type

        #actor_impl

        #messages

        impl #id {
            #id_methods

            #[doc = #local_doc]
            #[inline]
            pub fn local_broadcast(#world: &mut ::kay::World) -> Self {
                ::kay::World::local_broadcast::<#self_ty>(#world)
            }

            #[doc = #global_doc]
            #[inline]
            pub fn global_broadcast(#world: &mut ::kay::World) -> Self {
                ::kay::World::global_broadcast::<#self_ty>(#world)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn expand_to_file(item: TokenStream) -> syn::File {
        syn::parse2(expand(TokenStream::new(), item).unwrap()).unwrap()
    }

    #[test]
    fn generates_the_id_the_actor_impl_messages_and_send_methods() {
        let file = expand_to_file(quote! {
            impl Counter {
                pub fn spawn(id: CounterID, n: u32, _: &mut World) -> Self { Counter { id, n } }
                pub fn add(&mut self, n: u32, _: &mut World) {}
                pub fn get(&self, _: &mut World) -> u32 { 0 }
                #[essential]
                fn draw(&self, _: &mut World) {}
            }
        });
        let text = quote!(#file).to_string();
        for needle in [
            "pub struct CounterID",
            "impl :: kay :: Actor for Counter",
            "struct __kay_Counter_spawn",
            "struct __kay_Counter_add",
            "__kay_reply : :: kay :: ReplyTo < u32 >",
            "pub fn spawn (n : u32 , world : & mut :: kay :: World) -> Self",
            "pub fn add (self , n : u32 , world : & mut :: kay :: World)",
            "-> :: kay :: Reply < u32 >",
            "fn draw (self , world : & mut :: kay :: World)",
            "essential_handler",
            "pub fn local_broadcast",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
        assert!(!text.contains("# [essential]"), "{text}");
    }

    #[test]
    fn rejects_what_is_not_an_inherent_impl() {
        for item in [
            quote!(
                struct Counter;
            ),
            quote!(impl Trait for Counter {}),
            quote!(
                impl<T> Cell<T> {}
            ),
            quote!(impl Cell<u32> {}),
        ] {
            assert!(expand(TokenStream::new(), item).is_err());
        }
        assert!(
            expand(quote!(pub), quote!(impl Counter {}))
                .is_ok_and(|t| t.to_string().contains("compile_error"))
        );
    }
}
