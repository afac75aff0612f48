//! Two attribute macros for writing an item once with `async fn`/`.await` and compiling it twice:
//! `keep_async` returns the item unchanged; `strip_async` deletes every `async` keyword and every
//! `.await` token pair (recursing into delimited groups), giving plain blocking code.
//! Uses only the compiler's `proc_macro` crate (no syn/quote).

use proc_macro::{Group, TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn keep_async(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}

#[proc_macro_attribute]
pub fn strip_async(_attr: TokenStream, item: TokenStream) -> TokenStream {
    strip(item)
}

fn strip(ts: TokenStream) -> TokenStream {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            TokenTree::Ident(id) if id.to_string() == "async" => {
                i += 1;
                continue;
            }
            TokenTree::Punct(p) if p.as_char() == '.' => {
                if let Some(TokenTree::Ident(id)) = toks.get(i + 1) {
                    if id.to_string() == "await" {
                        i += 2;
                        continue;
                    }
                }
                out.push(toks[i].clone());
            }
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), strip(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            t => out.push(t.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}
