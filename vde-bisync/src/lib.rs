//! Blocking and async from one source.
//!
//! The engine's I/O code is written once, as `async fn` with `.await` on every call that reaches
//! the device, and compiled twice: the crate includes the same files in a `blocking` module and
//! an `asynch` module (`#[path = "."]`), and each module brings its own meaning of the
//! `#[bisync]` attribute into scope:
//!
//! - [`macro@strip_async`] (the blocking build) removes every `async` keyword and every `.await`
//!   from the item and reads the async closure traits `AsyncFnOnce`, `AsyncFnMut` and `AsyncFn`
//!   as `FnOnce`, `FnMut` and `Fn`, so the blocking code is exactly the plain code one would
//!   write by hand (an `async |v| ..` closure becomes `|v| ..`);
//! - [`macro@keep_async`] (the async build) leaves the item as it is.
//!
//! Invariants: only the tokens `async`, `.` `await` and the three `AsyncFn*` names are touched
//! (inside every group, at any depth); spans are kept, so errors point at the shared source. An
//! `async` block is not supported (stripping its keyword would make a plain block of it, in
//! which `?` leaves the function instead of the block): the engine uses async closures.

use proc_macro::{Delimiter, Group, TokenStream, TokenTree};

/// The blocking meaning of `#[bisync]`: the item without `async` and `.await`.
#[proc_macro_attribute]
pub fn strip_async(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("`strip_async` takes no arguments");
    }
    strip(item)
}

/// The async meaning of `#[bisync]`: the item unchanged.
#[proc_macro_attribute]
pub fn keep_async(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("`keep_async` takes no arguments");
    }
    item
}

/// `stream` without the `async` keyword and `.await` suffixes, in every nested group.
fn strip(stream: TokenStream) -> TokenStream {
    let mut out: Vec<TokenTree> = Vec::new();
    let mut tokens = stream.into_iter().peekable();
    while let Some(tt) = tokens.next() {
        match tt {
            TokenTree::Ident(ref id) if id.to_string() == "async" => {}
            TokenTree::Ident(ref id) if id.to_string().starts_with("AsyncFn") => {
                let name = id.to_string();
                let plain = name.trim_start_matches("Async");
                out.push(TokenTree::Ident(proc_macro::Ident::new(plain, id.span())));
            }
            TokenTree::Punct(ref p) if p.as_char() == '.' => {
                let is_await = matches!(tokens.peek(), Some(TokenTree::Ident(id)) if id.to_string() == "await");
                if is_await {
                    tokens.next();
                } else {
                    out.push(tt);
                }
            }
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), strip(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// A `compile_error!` with `msg`.
fn error(msg: &str) -> TokenStream {
    let lit = proc_macro::Literal::string(msg);
    let body: TokenStream = TokenTree::Literal(lit).into();
    let mut ts: Vec<TokenTree> = "compile_error!"
        .parse::<TokenStream>()
        .unwrap_or_default()
        .into_iter()
        .collect();
    ts.push(TokenTree::Group(Group::new(Delimiter::Parenthesis, body)));
    ts.into_iter().collect()
}
