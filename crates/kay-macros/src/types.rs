//! The types a message may carry: checks of what they contain, and the
//! rewriting of `Self` (messages are declared outside the impl block, where
//! `Self` means nothing).

use proc_macro2::Span;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Ident, Type, TypePath, parse_quote};

use crate::handler::Context;

/// Checks what a type may contain and replaces `Self` (in a class) with the
/// class's name, or `Self::ID` with its ID type.
pub(crate) fn resolve_type(mut ty: Type, context: &Context<'_>) -> syn::Result<Type> {
    let mut check = CheckType(Ok(()));
    check.visit_type(&ty);
    check.0?;
    match context {
        Context::Class { name, id } => {
            ReplaceSelf { name, id }.visit_type_mut(&mut ty);
            Ok(ty)
        }
        Context::Trait => {
            let mut finder = FindSelf(None);
            finder.visit_type(&ty);
            match finder.0 {
                Some(span) => Err(syn::Error::new(
                    span,
                    "`Self` cannot appear in an actor trait's messages: the implementor is \
                     only known at run time; name a concrete type",
                )),
                None => Ok(ty),
            }
        }
    }
}

/// Rejects `impl Trait`, references and non-`'static` lifetimes in a message type.
struct CheckType(syn::Result<()>);

impl Visit<'_> for CheckType {
    fn visit_type_impl_trait(&mut self, ty: &syn::TypeImplTrait) {
        if self.0.is_ok() {
            self.0 = Err(syn::Error::new_spanned(
                ty,
                "`impl Trait` cannot be sent in a message: handlers are not generic; name a concrete type",
            ));
        }
    }
    fn visit_lifetime(&mut self, lifetime: &syn::Lifetime) {
        if self.0.is_ok() && lifetime.ident != "static" {
            self.0 = Err(syn::Error::new_spanned(
                lifetime,
                "a message cannot borrow: its values are copied into the recipient's inbox; \
                 use owned compact types (CVec, CString, ..)",
            ));
        }
    }
    fn visit_type_reference(&mut self, ty: &syn::TypeReference) {
        if self.0.is_ok() {
            self.0 = Err(syn::Error::new_spanned(
                ty,
                "a message cannot hold references: its values are copied into the recipient's \
                 inbox; use owned compact types (CVec, CString, ..)",
            ));
        }
    }
}

/// Finds a `Self` path in a type.
struct FindSelf(Option<Span>);

impl Visit<'_> for FindSelf {
    fn visit_path(&mut self, path: &syn::Path) {
        if let Some(first) = path.segments.first()
            && first.ident == "Self"
            && self.0.is_none()
        {
            self.0 = Some(first.ident.span());
        }
        syn::visit::visit_path(self, path);
    }
}

/// Replaces `Self` with the class name and `Self::ID` with its ID type.
struct ReplaceSelf<'a> {
    name: &'a Ident,
    id: &'a Ident,
}

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(TypePath { qself: None, path }) = ty {
            let segments: Vec<_> = path.segments.iter().collect();
            if segments.first().is_some_and(|s| s.ident == "Self") {
                let (name, id) = (self.name, self.id);
                let span = segments[0].ident.span();
                match &segments[..] {
                    [_] => *ty = parse_quote!(#name),
                    [_, s] if s.ident == "ID" && s.arguments.is_none() => {
                        *ty = parse_quote!(#id);
                    }
                    [_, rest @ ..] => {
                        let rest = rest.iter();
                        *ty = parse_quote!(<#name as ::kay::Actor>#(::#rest)*);
                    }
                    [] => {}
                }
                set_span(ty, span);
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// Gives the identifiers of a replaced `Self` the span of the original `Self`.
fn set_span(ty: &mut Type, span: Span) {
    struct Respan(Span);
    impl VisitMut for Respan {
        fn visit_ident_mut(&mut self, ident: &mut Ident) {
            ident.set_span(self.0);
        }
    }
    Respan(span).visit_type_mut(ty);
}
