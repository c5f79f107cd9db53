//! Code generation for one classified [`Method`]: its message struct, the ID
//! method that sends it, and the registration of the handler or spawner that
//! receives it. Shared by `#[kay::actor]` and `#[kay::actor_trait]`.
//!
//! All local names in generated code (`world`, `actor`, `msg`, ..) have
//! [`Span::mixed_site`] hygiene, so they never clash with the user's names;
//! all paths are absolute (`::kay::..`, `::core::..`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::handler::{Kind, Method, Returns};

/// A local name for generated code: `__kay_{name}`, with mixed-site
/// hygiene. The prefix keeps it apart from constants and unit structs of the
/// user's module, which hygiene does not hide (a binding named like a
/// constant in scope would become a constant pattern).
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(&format!("__kay_{name}"), Span::mixed_site())
}

/// The `world` parameter of generated ID methods: named `world` for
/// readable docs, with mixed-site hygiene.
pub(crate) fn world_param() -> Ident {
    Ident::new("world", Span::mixed_site())
}

/// The message struct of `method`: one field per argument, plus the
/// `ReplyTo` of a request.
///
/// The field types keep the spans of the user's parameter types, so the
/// `Compact` derive reports an argument type that is not `Compact` right
/// there. (Messages do not derive `Clone`: handlers get them by reference,
/// and only by-value arguments are cloned out, see [`registration`].)
pub(crate) fn message_struct(msg: &Ident, method: &Method) -> TokenStream {
    let cfgs = &method.cfgs;
    let fields = method.args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        quote!(#name: #ty)
    });
    let (reply, request) = match &method.kind {
        Kind::Handler {
            returns: Returns::Reply(ty),
            ..
        } => (
            quote_spanned!(ty.span()=> __kay_reply: ::kay::ReplyTo<#ty>,),
            quote! {
                #(#cfgs)*
                impl ::kay::Request for #msg {
                    type Answer = #ty;
                    fn reply_to(&self) -> ::kay::ReplyTo<#ty> {
                        self.__kay_reply
                    }
                }
            },
        ),
        _ => (TokenStream::new(), TokenStream::new()),
    };
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::kay::Compact)]
        #[compact(crate = "::kay::compact")]
        struct #msg {
            #(#fields,)*
            #reply
        }
        #request
    }
}

/// The method of the ID type that sends `method`'s message: `self.name(args..,
/// world)` for handlers (returning a `Reply<T>` for requests), and
/// `NameID::spawn..(args.., world) -> NameID` for spawners of class `class`.
pub(crate) fn id_method(
    msg: &Ident,
    method: &Method,
    owner: &str,
    class: Option<&Ident>,
) -> TokenStream {
    let world = world_param();
    let Method {
        name,
        vis,
        args,
        docs,
        cfgs,
        ..
    } = method;
    let params = args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        quote!(#name: #ty)
    });
    let names: Vec<&Ident> = args.iter().map(|arg| &arg.name).collect();
    let attrs = quote! {
        #(#cfgs)*
        #(#docs)*
        #[inline]
        #[allow(clippy::too_many_arguments, dead_code)]
    };
    match (&method.kind, class) {
        (Kind::Spawner, Some(class)) => {
            let doc = generated_doc(
                docs.is_empty(),
                format!(
                    "Spawns a `{owner}` with `{owner}::{name}` and returns its ID. The ID is \
                     valid at once; the instance exists from the next message cycle."
                ),
            );
            let name_on = quote::format_ident!("{}_on", name);
            let machine = local("machine");
            let params_on = params.clone();
            let doc_on = format!(
                " Spawns a `{owner}` with `{owner}::{name}` on `machine` (see \
                 `World::spawn_on`): its ID is given there."
            );
            quote! {
                #attrs
                #doc
                #vis fn #name(#(#params,)* #world: &mut ::kay::World) -> Self {
                    ::kay::World::spawn::<#class, #msg>(#world, #msg { #(#names,)* })
                }

                #(#cfgs)*
                #[doc = #doc_on]
                #[inline]
                #[allow(clippy::too_many_arguments, dead_code)]
                #vis fn #name_on(
                    #machine: ::kay::MachineID,
                    #(#params_on,)*
                    #world: &mut ::kay::World,
                ) {
                    ::kay::World::spawn_on::<#class, #msg>(#world, #machine, #msg { #(#names,)* })
                }
            }
        }
        (
            Kind::Handler {
                returns: Returns::Reply(ty),
                ..
            },
            _,
        ) => {
            let (to, reply) = (local("to"), local("reply"));
            let doc = generated_doc(
                docs.is_empty(),
                format!(
                    "Asks the actor (`{owner}::{name}`, in a later message cycle); the \
                     `Reply` resolves to its answer."
                ),
            );
            quote! {
                #attrs
                #doc
                #vis fn #name(self, #(#params,)* #world: &mut ::kay::World) -> ::kay::Reply<#ty> {
                    let (#to, #reply) = ::kay::World::request_to::<#ty>(#world, self);
                    ::kay::World::send(#world, self, #msg { #(#names,)* __kay_reply: #to });
                    #reply
                }
            }
        }
        _ => {
            let doc = generated_doc(
                docs.is_empty(),
                format!(
                    "Sends the `{name}` message: the actor runs `{owner}::{name}` in a later \
                     message cycle (every instance, if this is a broadcast ID)."
                ),
            );
            quote! {
                #attrs
                #doc
                #vis fn #name(self, #(#params,)* #world: &mut ::kay::World) {
                    ::kay::World::send(#world, self, #msg { #(#names,)* });
                }
            }
        }
    }
}

/// A `#[doc]` for a generated method: `text` if the user wrote no docs.
fn generated_doc(no_user_docs: bool, text: String) -> TokenStream {
    if no_user_docs {
        quote!(#[doc = #text])
    } else {
        TokenStream::new()
    }
}

/// The statement that registers `method`'s handler or spawner on the
/// `ClassSetup` named `class`. `actor` is the actor type and `call` the path
/// of the user's function (`<Name>::method` or `<A as Trait>::method`).
pub(crate) fn registration(
    class: &Ident,
    msg: &Ident,
    method: &Method,
    owner: &str,
    actor: &TokenStream,
    call: &TokenStream,
) -> TokenStream {
    let (world, this, message, result) = (
        local("world"),
        local("actor"),
        local("msg"),
        local("result"),
    );
    let values = method.args.iter().map(|arg| {
        let name = &arg.name;
        if arg.by_ref {
            quote!(&#message.#name)
        } else {
            clone_field(&message, name, &arg.ty)
        }
    });
    let cfgs = &method.cfgs;
    let statement = match &method.kind {
        Kind::Spawner => {
            let id = local("id");
            quote! {
                #class.spawner(|#id: <#actor as ::kay::Actor>::ID, #message: &#msg, #world: &mut ::kay::World| {
                    #call(#id, #(#values,)* #world)
                });
            }
        }
        Kind::Handler {
            returns, essential, ..
        } => {
            let request = matches!(returns, Returns::Reply(_));
            let register = match (*essential, request) {
                (true, true) => quote!(essential_request_handler),
                (true, false) => quote!(essential_handler),
                (false, true) => quote!(request_handler),
                (false, false) => quote!(handler),
            };
            let body = match returns {
                Returns::Reply(ty) => {
                    let answer = quote_spanned! {ty.span()=>
                        ::kay::World::reply::<#ty>(#world, #message.__kay_reply, #result);
                    };
                    quote! {
                        let #result = #call(#this, #(#values,)* #world);
                        #answer
                    }
                }
                Returns::Unit | Returns::Fate => quote!(#call(#this, #(#values,)* #world)),
            };
            quote! {
                #class.#register(|#this: &mut #actor, #message: &#msg, #world: &mut ::kay::World| {
                    #body
                });
            }
        }
    };
    let describe = describe(class, msg, method, owner);
    quote! {
        #(#cfgs)*
        #statement
        #(#cfgs)*
        #describe
    }
}

/// The registration of a `#[message]` handler: the message type it takes
/// (its one argument), handled as it is.
pub(crate) fn existing_registration(
    class: &Ident,
    method: &Method,
    actor: &TokenStream,
    call: &TokenStream,
) -> TokenStream {
    let (world, this, message) = (local("world"), local("actor"), local("msg"));
    let ty = &method.args[0].ty;
    let register = match method.kind {
        Kind::Handler {
            essential: true, ..
        } => quote!(essential_handler),
        _ => quote!(handler),
    };
    let cfgs = &method.cfgs;
    quote_spanned! {ty.span()=>
        #(#cfgs)*
        #class.#register(|#this: &mut #actor, #message: &#ty, #world: &mut ::kay::World| {
            #call(#this, #message, #world)
        });
    }
}

/// Names the hidden message type `Owner::method` in statistics and panic
/// reports, and formats it as `method(arg: value, ..)` (`..` for arguments
/// without `Debug`, found by autoref specialization on the concrete types).
fn describe(class: &Ident, msg: &Ident, method: &Method, owner: &str) -> TokenStream {
    let (message, out) = (local("msg"), local("out"));
    let label = format!("{owner}::{}", method.name);
    let open = format!("{}(", method.name);
    let fields = method.args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        let text = name.to_string();
        quote! {
            ::kay::private::debug_field(
                &mut #out,
                #text,
                &#message.#name,
                (&&::kay::private::Probe::<#ty>::NEW).kay_debug(),
            );
        }
    });
    quote! {
        #class.describe_message::<#msg>(#label, |#message: &#msg| {
            #[allow(unused_imports)]
            use ::kay::private::{ProbeDebug as _, ProbeNoDebug as _};
            let mut #out = ::kay::private::debug_open(#open);
            #(#fields)*
            #out.push(')');
            #out
        });
    }
}

/// `Clone::clone(&msg.field)`, spanned on the argument's type so that a
/// missing `Clone` is reported there.
fn clone_field(message: &Ident, name: &Ident, ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> <#ty as ::core::clone::Clone>::clone(&#message.#name))
}
