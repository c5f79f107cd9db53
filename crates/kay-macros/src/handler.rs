//! Method classification: which methods of an `#[kay::actor]` impl or an
//! `#[kay::actor_trait]` trait are handlers, spawners or requests, and what
//! their messages carry.
//!
//! Every check here produces a [`syn::Error`] spanned on the offending token
//! with a message that says how to fix it. Errors of all methods are collected
//! (see [`Errors`]), so one compile run reports every misuse at once.

use quote::format_ident;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, FnArg, Ident, Pat, PathArguments, ReturnType, Signature, Type, TypePath, Visibility,
};

use crate::types::resolve_type;

/// Collects errors so that every misuse in one item is reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps the value of `result`, or records its error.
    pub(crate) fn keep<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// Whether no error was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The collected errors as `compile_error!` invocations (nothing if none).
    pub(crate) fn into_compile_errors(self) -> proc_macro2::TokenStream {
        self.0
            .map(syn::Error::into_compile_error)
            .unwrap_or_default()
    }
}

/// What a handler returns.
pub(crate) enum Returns {
    /// `()`: the actor lives on.
    Unit,
    /// `kay::Fate`: the handler decides whether the actor lives on.
    Fate,
    /// Any other `T`: the method is a request answered with this value.
    Reply(Box<Type>),
}

/// How a method is reached through messages.
pub(crate) enum Kind {
    /// `fn name(&mut self | &self, args.., world: &mut World) -> () | Fate | T`.
    Handler {
        /// What the handler returns.
        returns: Returns,
        /// Registered with `essential_handler` (runs after a panic).
        essential: bool,
    },
    /// `fn spawn..(id: NameID, args.., world: &mut World) -> Self`.
    Spawner,
}

/// One argument of a handler: a field of its message and a parameter of the
/// generated ID method.
pub(crate) struct Arg {
    /// The field / parameter name: the user's parameter name, or
    /// `__kay_argN` for patterns that are not a plain name (like `_`).
    pub(crate) name: Ident,
    /// The owned type (for `&T` parameters, `T`), with `Self` replaced.
    pub(crate) ty: Type,
    /// The handler takes the argument by reference into the queued message.
    pub(crate) by_ref: bool,
}

/// A classified handler or spawner.
pub(crate) struct Method {
    /// The method's name.
    pub(crate) name: Ident,
    /// The method's visibility, given to the generated ID method.
    pub(crate) vis: Visibility,
    /// Handler or spawner.
    pub(crate) kind: Kind,
    /// The arguments carried by the message (without receiver, ID and world).
    pub(crate) args: Vec<Arg>,
    /// `#[doc]` attributes, copied to the generated ID method.
    pub(crate) docs: Vec<Attribute>,
    /// `#[cfg]` attributes, copied to everything generated for the method.
    pub(crate) cfgs: Vec<Attribute>,
    /// `#[message]`: the handler takes an existing message type (its one
    /// argument, by reference) as it is: no message struct, no ID method.
    pub(crate) existing: bool,
}

/// Method names the generated ID types use for themselves.
const RESERVED: &[&str] = &[
    "local_broadcast",
    "global_broadcast",
    "from_raw",
    "as_raw",
    "__kay_register_implementor",
];

/// Where a method is declared: decides which shapes are allowed and what
/// `Self` means.
pub(crate) enum Context<'a> {
    /// An inherent `impl Name` of an actor class.
    Class {
        /// The class's name.
        name: &'a Ident,
        /// The class's ID type (`NameID`).
        id: &'a Ident,
    },
    /// An `#[kay::actor_trait]` trait.
    Trait,
}

/// Classifies a method of an `#[kay::actor] impl` block. Returns `Ok(None)`
/// for associated functions that are neither handlers nor spawners (no
/// receiver and a name not starting with `spawn`): they are left alone.
///
/// Strips `#[essential]` from `attrs`.
pub(crate) fn classify_impl_fn(
    vis: &Visibility,
    attrs: &mut Vec<Attribute>,
    sig: &Signature,
    context: &Context<'_>,
) -> syn::Result<Option<Method>> {
    let essential = take_essential(attrs);
    let message = take_attr(attrs, "message");
    let has_receiver = sig.receiver().is_some();
    let is_spawner = !has_receiver && sig.ident.to_string().starts_with("spawn");
    if !has_receiver && let Some(attr) = &message {
        return Err(syn::Error::new_spanned(
            attr,
            "#[message] belongs on a handler (a method taking `&mut self` or `&self`, one \
             argument `&M` of a message type, and the world)",
        ));
    }
    if !has_receiver && !is_spawner {
        if let Some(attr) = essential {
            return Err(syn::Error::new_spanned(
                &attr,
                "#[essential] belongs on a handler (a method taking `&mut self` or `&self`)",
            ));
        }
        return Ok(None);
    }
    let mut errors = Errors::default();
    errors.keep(check_plain_fn(sig, "a handler"));
    if let Some(receiver) = sig.receiver() {
        errors.keep(check_receiver(receiver, false));
    }
    let args = collect_args(sig, is_spawner, context, &mut errors);
    if is_spawner {
        if let Some(attr) = &essential {
            errors.push(syn::Error::new_spanned(
                attr,
                "#[essential] does not apply to spawners; put it on handlers",
            ));
        }
        if let Context::Class { name, .. } = context {
            errors.keep(check_spawner_return(sig, name));
        }
    }
    let returns = if is_spawner {
        Returns::Unit
    } else {
        errors
            .keep(classify_return(&sig.output, context))
            .unwrap_or(Returns::Unit)
    };
    errors.keep(check_reserved(&sig.ident));
    if let Some(attr) = &message {
        let one_by_ref = args.len() == 1 && args[0].by_ref;
        if !one_by_ref || matches!(returns, Returns::Reply(_)) {
            errors.push(syn::Error::new_spanned(
                attr,
                "#[message] handles a message type as it is: the handler takes exactly one \
                 argument, a reference `&M` to the message, besides the world, and returns \
                 `()` or `Fate`",
            ));
        }
    }
    if let Some(error) = errors.0 {
        return Err(error);
    }
    let kind = if is_spawner {
        Kind::Spawner
    } else {
        Kind::Handler {
            returns,
            essential: essential.is_some(),
        }
    };
    Ok(Some(Method {
        name: sig.ident.clone(),
        vis: vis.clone(),
        kind,
        args,
        docs: attrs_named(attrs, "doc"),
        cfgs: attrs_named(attrs, "cfg"),
        existing: message.is_some(),
    }))
}

/// Classifies a method of an `#[kay::actor_trait]` trait: every method is a
/// message handler taking `&mut self`. Strips `#[essential]` from `attrs`.
pub(crate) fn classify_trait_fn(
    vis: &Visibility,
    attrs: &mut Vec<Attribute>,
    sig: &Signature,
) -> syn::Result<Method> {
    let essential = take_essential(attrs);
    let mut errors = Errors::default();
    if let Some(attr) = take_attr(attrs, "message") {
        errors.push(syn::Error::new_spanned(
            attr,
            "#[message] is for handlers in `#[kay::actor]` impl blocks, not actor traits",
        ));
    }
    errors.keep(check_plain_fn(sig, "an actor trait method"));
    match sig.receiver() {
        Some(receiver) => {
            errors.keep(check_receiver(receiver, true));
        }
        None => errors.push(syn::Error::new_spanned(
            &sig.ident,
            "an actor trait method must take `&mut self`: every method of an actor trait \
             is a message handler (move other functions into a separate trait)",
        )),
    }
    let args = collect_args(sig, false, &Context::Trait, &mut errors);
    let returns = errors
        .keep(classify_return(&sig.output, &Context::Trait))
        .unwrap_or(Returns::Unit);
    errors.keep(check_reserved(&sig.ident));
    if let Some(error) = errors.0 {
        return Err(error);
    }
    Ok(Method {
        name: sig.ident.clone(),
        vis: vis.clone(),
        kind: Kind::Handler {
            returns,
            essential: essential.is_some(),
        },
        args,
        docs: attrs_named(attrs, "doc"),
        cfgs: attrs_named(attrs, "cfg"),
        existing: false,
    })
}

/// Removes every `#[essential]` from the methods of `item` (an impl block or
/// a trait), for emitting an item the macros could not expand; other items
/// are returned unchanged.
pub(crate) fn strip_essential(item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    struct Strip;
    impl VisitMut for Strip {
        fn visit_impl_item_fn_mut(&mut self, f: &mut syn::ImplItemFn) {
            f.attrs
                .retain(|a| !a.path().is_ident("essential") && !a.path().is_ident("message"));
        }
        fn visit_trait_item_fn_mut(&mut self, f: &mut syn::TraitItemFn) {
            f.attrs
                .retain(|a| !a.path().is_ident("essential") && !a.path().is_ident("message"));
        }
    }
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(mut parsed) => {
            Strip.visit_item_mut(&mut parsed);
            quote::quote!(#parsed)
        }
        Err(_) => item,
    }
}

/// Adds `#[inline]` to a handler or spawner that has no inline attribute of
/// its own (nor `#[cold]`).
///
/// The generated registration calls the handler from a closure, and kay
/// monomorphises that closure into its dispatch loop. A hand-written closure
/// is inlined there; a method called from it can only be inlined across
/// codegen units if it is `#[inline]`. The hint makes both paths cost the same.
pub(crate) fn mark_inline(attrs: &mut Vec<Attribute>) {
    if !attrs
        .iter()
        .any(|a| a.path().is_ident("inline") || a.path().is_ident("cold"))
    {
        attrs.push(syn::parse_quote!(#[inline]));
    }
}

/// Removes `#[essential]` from `attrs` and returns it.
fn take_essential(attrs: &mut Vec<Attribute>) -> Option<Attribute> {
    take_attr(attrs, "essential")
}

/// Removes the attribute `#[name]` from `attrs` and returns it.
fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Option<Attribute> {
    let at = attrs.iter().position(|a| a.path().is_ident(name))?;
    Some(attrs.remove(at))
}

/// Clones the attributes named `name` (like `doc` or `cfg`).
fn attrs_named(attrs: &[Attribute], name: &str) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident(name))
        .cloned()
        .collect()
}

/// Rejects `const`, `async`, `unsafe`, `extern`, variadics and generics.
fn check_plain_fn(sig: &Signature, what: &str) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span,
            format!("{what} cannot be `const`: it runs when its message is handled"),
        ));
    }
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new(
            token.span,
            format!(
                "{what} cannot be `async`: handlers run to completion inside a message cycle; \
                 to wait for an answer, send a request and handle the reply in another message"
            ),
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new(
            token.span,
            format!("{what} cannot be `unsafe`: messages are sent through safe ID methods"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("{what} cannot have an `extern` ABI"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("{what} cannot be variadic"),
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "{what} cannot be generic: each handler has one concrete message type; \
                 write one handler per concrete type, or take a compact enum"
            ),
        ));
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            clause,
            format!(
                "{what} cannot have a `where` clause: each handler has one concrete message type"
            ),
        ));
    }
    errors.0.map_or(Ok(()), Err)
}

/// Accepts `&mut self`, and `&self` unless `mut_only`.
fn check_receiver(receiver: &syn::Receiver, mut_only: bool) -> syn::Result<()> {
    let (is_ref, mutable) = match (&receiver.colon_token, &*receiver.ty) {
        (Some(_), Type::Reference(r)) if is_self_type(&r.elem) => (true, r.mutability.is_some()),
        (Some(_), _) => (false, false),
        (None, _) => (receiver.reference.is_some(), receiver.mutability.is_some()),
    };
    let message = if mut_only {
        "an actor trait method must take `&mut self` (messages are handled by the actor in place)"
    } else {
        "a handler takes `&mut self` or `&self`: actors stay in their instance store \
         and cannot be moved out or boxed"
    };
    if !is_ref || (mut_only && !mutable) {
        return Err(syn::Error::new_spanned(receiver, message));
    }
    Ok(())
}

fn is_self_type(ty: &Type) -> bool {
    matches!(ty, Type::Path(TypePath { qself: None, path }) if path.is_ident("Self"))
}

/// Whether `ty` is `&mut World` (any path ending in `World`).
fn is_world(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => match &*r.elem {
            Type::Path(TypePath { qself: None, path }) => path
                .segments
                .last()
                .is_some_and(|s| s.ident == "World" && s.arguments.is_none()),
            _ => false,
        },
        _ => false,
    }
}

/// Collects the message arguments: every typed parameter except the last
/// (`world: &mut World`) and, for spawners, the first (the ID).
fn collect_args(
    sig: &Signature,
    is_spawner: bool,
    context: &Context<'_>,
    errors: &mut Errors,
) -> Vec<Arg> {
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let world_ok = typed.last().is_some_and(|t| is_world(&t.ty));
    if !world_ok {
        let span = match typed.last() {
            Some(last) => last.span(),
            None => sig.paren_token.span.join(),
        };
        errors.push(syn::Error::new(
            span,
            "the last parameter must be `world: &mut World` (kay passes the World to every \
             handler and spawner, to send messages from it; name it `_` if unused)",
        ));
    }
    let mut middle = &typed[..typed.len() - usize::from(world_ok)];
    if is_spawner {
        match middle.split_first() {
            Some((id, rest)) if !is_world(&id.ty) && !matches!(*id.ty, Type::Reference(_)) => {
                middle = rest;
            }
            _ => {
                let span = typed
                    .first()
                    .map_or(sig.paren_token.span.join(), |t| t.span());
                let id = match context {
                    Context::Class { id, .. } => id.to_string(),
                    Context::Trait => "NameID".to_owned(),
                };
                errors.push(syn::Error::new(
                    span,
                    format!(
                        "the first parameter of a spawner is the new actor's ID: \
                         `fn {}(id: {id}, .., world: &mut World) -> Self`",
                        sig.ident
                    ),
                ));
                return Vec::new();
            }
        }
    }
    middle
        .iter()
        .enumerate()
        .filter_map(|(i, t)| errors.keep(classify_arg(i, t, context)))
        .collect()
}

/// One message argument: by value or `&T`.
fn classify_arg(index: usize, arg: &syn::PatType, context: &Context<'_>) -> syn::Result<Arg> {
    let name = match &*arg.pat {
        Pat::Ident(p) if p.subpat.is_none() => {
            let unraw = p.ident.to_string();
            if unraw.starts_with("__kay") {
                return Err(syn::Error::new_spanned(
                    &p.ident,
                    "names starting with `__kay` are reserved for kay's generated code",
                ));
            }
            p.ident.clone()
        }
        _ => format_ident!("__kay_arg{}", index),
    };
    let (ty, by_ref) = match &*arg.ty {
        Type::Reference(r) => {
            if let Some(m) = &r.mutability {
                return Err(syn::Error::new(
                    m.span,
                    "a handler cannot take `&mut` arguments: messages are shared and read-only; \
                     take `&T` (a reference into the queued message) or `T` (a clone)",
                ));
            }
            if let Some(lifetime) = &r.lifetime {
                return Err(syn::Error::new_spanned(
                    lifetime,
                    "remove this lifetime: a `&T` argument borrows from the queued message \
                     for the duration of the handler",
                ));
            }
            ((*r.elem).clone(), true)
        }
        ty => (ty.clone(), false),
    };
    let ty = resolve_type(ty, context)?;
    Ok(Arg { name, ty, by_ref })
}

/// Classifies the return type of a handler.
fn classify_return(output: &ReturnType, context: &Context<'_>) -> syn::Result<Returns> {
    let ty = match output {
        ReturnType::Default => return Ok(Returns::Unit),
        ReturnType::Type(_, ty) => &**ty,
    };
    match ty {
        Type::Tuple(t) if t.elems.is_empty() => Ok(Returns::Unit),
        Type::Path(TypePath { qself: None, path })
            if path.segments.last().is_some_and(|s| {
                s.ident == "Fate" && matches!(s.arguments, PathArguments::None)
            }) =>
        {
            Ok(Returns::Fate)
        }
        ty => Ok(Returns::Reply(Box::new(resolve_type(ty.clone(), context)?))),
    }
}

/// A spawner returns `Self` or the class by name.
fn check_spawner_return(sig: &Signature, name: &Ident) -> syn::Result<()> {
    let ok = match &sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(TypePath { qself: None, path }) => {
                path.is_ident("Self")
                    || path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == *name && s.arguments.is_none())
            }
            _ => false,
        },
        ReturnType::Default => false,
    };
    if ok {
        return Ok(());
    }
    let span = match &sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => sig.paren_token.span.close(),
    };
    Err(syn::Error::new(
        span,
        format!(
            "a spawner returns the new actor: `-> Self` (or `-> {name}`); kay puts it into \
             the instance store (functions named `spawn..` without `self` are spawners)"
        ),
    ))
}

/// Rejects method names the generated ID types use themselves.
fn check_reserved(name: &Ident) -> syn::Result<()> {
    let text = name.to_string();
    if RESERVED.contains(&text.as_str()) {
        return Err(syn::Error::new_spanned(
            name,
            format!("`{text}` is a method of every generated ID type; rename this handler"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::{ImplItemFn, TraitItemFn, parse_quote};

    use super::*;

    fn class_context() -> (Ident, Ident) {
        (parse_quote!(Counter), parse_quote!(CounterID))
    }

    fn classify(mut f: ImplItemFn) -> syn::Result<Option<Method>> {
        let (name, id) = class_context();
        let context = Context::Class {
            name: &name,
            id: &id,
        };
        classify_impl_fn(&f.vis, &mut f.attrs, &f.sig, &context)
    }

    fn tokens(ty: &Type) -> String {
        quote!(#ty).to_string()
    }

    #[test]
    fn handlers_take_values_and_references() {
        let method = classify(parse_quote! {
            /// Adds.
            pub fn add(&mut self, a: u32, (x, y): (u8, u8), b: &CVec<u32>, world: &mut World) {}
        })
        .unwrap()
        .unwrap();
        assert_eq!(method.name, "add");
        assert!(matches!(
            method.kind,
            Kind::Handler {
                returns: Returns::Unit,
                essential: false
            }
        ));
        let args: Vec<_> = method
            .args
            .iter()
            .map(|a| (a.name.to_string(), tokens(&a.ty), a.by_ref))
            .collect();
        assert_eq!(
            args,
            vec![
                ("a".to_owned(), "u32".to_owned(), false),
                ("__kay_arg1".to_owned(), "(u8 , u8)".to_owned(), false),
                ("b".to_owned(), "CVec < u32 >".to_owned(), true),
            ]
        );
        assert_eq!(method.docs.len(), 1);
    }

    #[test]
    fn return_types_pick_the_kind_of_handler() {
        let returns = |f: ImplItemFn| match classify(f).unwrap().unwrap().kind {
            Kind::Handler { returns, .. } => returns,
            Kind::Spawner => panic!("not a handler"),
        };
        assert!(matches!(
            returns(parse_quote!(
                fn a(&self, _: &mut World) -> () {}
            )),
            Returns::Unit
        ));
        assert!(matches!(
            returns(parse_quote!(
                fn a(&mut self, _: &mut World) -> kay::Fate {}
            )),
            Returns::Fate
        ));
        match returns(parse_quote!(
            fn a(&self, _: &mut World) -> CVec<Self> {}
        )) {
            Returns::Reply(ty) => assert_eq!(tokens(&ty), "CVec < Counter >"),
            _ => panic!("a request"),
        }
    }

    #[test]
    fn spawners_and_plain_functions() {
        let spawner = classify(parse_quote! {
            fn spawn_at(id: CounterID, at: Self::ID, _: &mut World) -> Self {}
        })
        .unwrap()
        .unwrap();
        assert!(matches!(spawner.kind, Kind::Spawner));
        assert_eq!(spawner.args.len(), 1);
        assert_eq!(tokens(&spawner.args[0].ty), "CounterID");
        assert!(
            classify(parse_quote!(
                fn helper(x: u32) -> u32 {}
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn essential_is_stripped_and_recorded() {
        let mut f: ImplItemFn = parse_quote! {
            #[essential]
            #[cfg(test)]
            fn render(&self, _: &mut World) {}
        };
        let (name, id) = class_context();
        let context = Context::Class {
            name: &name,
            id: &id,
        };
        let method = classify_impl_fn(&f.vis, &mut f.attrs, &f.sig, &context)
            .unwrap()
            .unwrap();
        assert!(matches!(
            method.kind,
            Kind::Handler {
                essential: true,
                ..
            }
        ));
        assert_eq!(f.attrs.len(), 1);
        assert_eq!(method.cfgs.len(), 1);
    }

    #[test]
    fn misuse_is_rejected_with_every_error() {
        let error = classify(parse_quote! {
            async fn add<T>(self, x: &mut u32, y: impl Copy, z: &'a u8) {}
        })
        .err()
        .expect("errors");
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 7, "{messages:#?}");
        for needle in [
            "lifetime",
            "`async`",
            "generic",
            "`&mut self` or `&self`",
            "world: &mut World",
            "`&mut` arguments",
            "`impl Trait`",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(needle)),
                "{needle}: {messages:#?}"
            );
        }
    }

    #[test]
    fn trait_methods_take_mut_self() {
        let mut ok: TraitItemFn = parse_quote!(
            fn hear(&mut self, n: u32, w: &mut World);
        );
        let vis = Visibility::Inherited;
        assert!(classify_trait_fn(&vis, &mut ok.attrs, &ok.sig).is_ok());
        let mut bad: TraitItemFn = parse_quote!(
            fn hear(&self, n: Self, w: &mut World);
        );
        let error = classify_trait_fn(&vis, &mut bad.attrs, &bad.sig)
            .err()
            .expect("errors");
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
    }

    #[test]
    fn strip_essential_removes_markers() {
        let item = quote! {
            impl A {
                #[essential]
                fn a(&self, _: &mut World) {}
            }
        };
        let stripped = strip_essential(item).to_string();
        assert!(!stripped.contains("essential"), "{stripped}");
    }
}
