//! Typed ID types (`NameID`, `TraitID`) and the naming convention that
//! connects a class or trait to its ID.
//!
//! # Convention
//! The ID type of class `Name` is `NameID`, declared next to the
//! `#[kay::actor] impl Name` block; the ID type of actor trait `X` is `XID`,
//! declared next to the trait. Where another macro refers to them by path, the
//! ID's path is the class's or trait's path with `ID` appended to the last
//! segment: `a::b::X` → `a::b::XID`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, Path, Visibility};

use crate::message::local;

/// The name of the ID type of `name`: `{name}ID`.
pub(crate) fn id_ident(name: &Ident) -> Ident {
    let text = name.to_string();
    let text = text.strip_prefix("r#").unwrap_or(&text);
    format_ident!("{}ID", text, span = name.span())
}

/// The path of the ID type of the class or trait at `path` (see the module
/// docs): the same path with `ID` appended to its last segment.
///
/// Errors if the path has generic arguments (generic actors are not supported).
pub(crate) fn id_path(path: &Path, what: &str) -> syn::Result<Path> {
    let mut path = path.clone();
    let last = path
        .segments
        .last_mut()
        .ok_or_else(|| syn::Error::new(Span::call_site(), format!("expected a {what}")))?;
    if !last.arguments.is_none() {
        return Err(syn::Error::new_spanned(
            &last.arguments,
            format!(
                "a generic {what} cannot be an actor class or actor trait: kay registers one \
                 instance store and one set of message types per concrete class"
            ),
        ));
    }
    last.ident = id_ident(&last.ident);
    Ok(path)
}

/// The name of a message struct: `__kay_{owner}_{method}`.
pub(crate) fn message_ident(owner: &Ident, method: &Ident) -> Ident {
    let owner = owner.to_string();
    let method = method.to_string();
    let unraw = |s: &str| s.strip_prefix("r#").unwrap_or(s).to_owned();
    format_ident!("__kay_{}_{}", unraw(&owner), unraw(&method))
}

/// Declares a typed ID: a `Copy`, 8-byte `#[repr(transparent)]` newtype over
/// `kay::RawID` implementing `kay::TypedID`, `Compact`, `Debug` (`Name(1_2.0@0)`),
/// `Display`/`FromStr` (the raw ID's text form), `Hash`, `Eq` and `Ord`.
pub(crate) fn id_type(vis: &Visibility, id: &Ident, doc: &str) -> TokenStream {
    let name = id.to_string();
    let (raw, f, s) = (local("raw"), local("f"), local("s"));
    quote! {
        #[doc = #doc]
        #[repr(transparent)]
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::hash::Hash,
            ::core::cmp::PartialOrd,
            ::core::cmp::Ord,
            ::kay::Compact,
        )]
        #[compact(crate = "::kay::compact")]
        #vis struct #id(
            /// The untyped ID.
            pub ::kay::RawID,
        );

        impl ::kay::TypedID for #id {
            #[inline]
            fn from_raw(#raw: ::kay::RawID) -> Self {
                #id(#raw)
            }
            #[inline]
            fn as_raw(&self) -> ::kay::RawID {
                self.0
            }
        }

        impl ::core::fmt::Debug for #id {
            fn fmt(&self, #f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #f.write_str(#name)?;
                #f.write_str("(")?;
                ::core::fmt::Display::fmt(&self.0, #f)?;
                #f.write_str(")")
            }
        }

        impl ::core::fmt::Display for #id {
            fn fmt(&self, #f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.0, #f)
            }
        }

        impl ::core::str::FromStr for #id {
            type Err = ::kay::ParseIDError;
            fn from_str(#s: &::core::primitive::str) -> ::core::result::Result<Self, Self::Err> {
                ::core::result::Result::map(
                    <::kay::RawID as ::core::str::FromStr>::from_str(#s),
                    #id,
                )
            }
        }
    }
}

/// `From<class ID> for trait ID`: an implementor's ID addresses it through the trait.
pub(crate) fn id_into_trait_id(class_id: &Path, trait_id: &Path) -> TokenStream {
    let id = local("id");
    quote! {
        impl ::core::convert::From<#class_id> for #trait_id {
            #[inline]
            fn from(#id: #class_id) -> Self {
                <#trait_id as ::kay::TypedID>::from_raw(<#class_id as ::kay::TypedID>::as_raw(&#id))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn id_paths_follow_the_convention() {
        let path = id_path(&parse_quote!(a::b::Listener), "trait").unwrap();
        assert_eq!(quote!(#path).to_string(), "a :: b :: ListenerID");
        let raw: Ident = parse_quote!(r#type);
        assert_eq!(id_ident(&raw), "typeID");
        assert!(id_path(&parse_quote!(Cell<u32>), "type").is_err());
        assert_eq!(
            message_ident(&parse_quote!(Counter), &parse_quote!(r#move)),
            "__kay_Counter_move"
        );
    }

    #[test]
    fn id_types_parse_as_items() {
        let tokens = id_type(&parse_quote!(pub), &parse_quote!(CounterID), "docs");
        let file: syn::File = syn::parse2(tokens).unwrap();
        assert_eq!(file.items.len(), 5);
    }
}
