//! Lossless parsing and rewriting of PHP-serialized values, for moving WordPress sites
//! between URLs of different lengths.
//!
//! ```
//! use php_serial::UrlRewrite;
//!
//! let rw = UrlRewrite::new("http://127.0.0.1:8081", "http://staging.example:18082/sub")?;
//! let stored = br#"a:1:{s:4:"home";s:21:"http://127.0.0.1:8081";}"#;
//! assert_eq!(
//!     rw.apply(stored).as_deref(),
//!     Some(&br#"a:1:{s:4:"home";s:32:"http://staging.example:18082/sub";}"#[..])
//! );
//! # Ok::<(), php_serial::UrlError>(())
//! ```
//!
//! # The format
//!
//! [`parse`] reads what PHP's `unserialize()` reads, over bytes: `N;`, `b:`, `i:`, `d:`
//! (`INF`, `NAN`, exponents), `s:N:"..."` with `N` in bytes, `a:`, `O:` of any class (private
//! and protected property names keep their NUL bytes), `C:` (payload kept as bytes), `E:`,
//! `r:` and `R:`. Integer and float texts are kept verbatim, so `parse(x)?.to_bytes() == x`
//! for every accepted `x`. Lengths and counts must be written as PHP writes them (no leading
//! zero); PHP also reads `s:05:`, which no writer produces, and the legacy escaped `S:`
//! strings: both are refused, as are bytes after a complete value (`i:1;junk` is text, as
//! WordPress's `is_serialized()` has it). Nesting is limited to [`MAX_DEPTH`]: deeper input
//! is an error, never a stack overflow; no input makes the parser panic.
//!
//! # Rewriting
//!
//! [`rewrite`] applies a [`Replacer`] to one stored value (a database cell). Serialized
//! values are rewritten string by string, recursively, and written back with every length
//! recomputed; anything else is replaced as plain text. Whitespace around a serialized value
//! is kept and tolerated, as `maybe_unserialize()` trims it.
//!
//! - **Strings that are themselves serialized** (double serialization) are parsed and
//!   rewritten in turn, however many times over.
//! - **Array keys** are rewritten too: plugins key maps by URL (redirects, caches), and a
//!   stale key is a stale URL. WP-CLI leaves them alone. Integer keys are never touched.
//!   Should two keys become equal, PHP keeps the last, as for any duplicate key.
//! - **Objects of any class**, known or not, are rewritten property by property; class
//!   names never. Property names are declarations and stay as they are, except on
//!   `stdClass`, whose property names are data (decoded JSON, casted arrays).
//! - **`C:` payloads** are a format only their class knows. One made of serialized values
//!   and the punctuation of PHP's own `Serializable` classes (`x:i:0;a:...;m:a:0:{}`) is
//!   rewritten value by value and its length recomputed; any other is kept verbatim.
//! - **References** (`r:`, `R:`) count values, and rewriting never adds or removes one, so
//!   they stay valid as they are. Enum cases are names, left alone.
//! - A value nested past the depth limit is left unchanged rather than broken.
//!
//! # URLs
//!
//! [`UrlRewrite`] is the replacer for moving a site: plain, JSON-escaped
//! (`http:\/\/`), protocol-relative (`//host`) and URL-encoded (`http%3A%2F%2F`, as in
//! `redirect_to=` parameters) forms; scheme and host compared ignoring case. A match must
//! end the URL: `http://old.example:8081` is not replaced inside `http://old.example:80812`
//! or `http://old.example:8081.other.example`, a from path `/blog` not inside `/blog2`. The
//! details are on [`UrlRewrite`]. Doubly encoded forms (`%253A`) and HTML entities
//! (`&#047;`) are not recognised.

mod parse;
mod rewrite;
mod url;
mod value;
mod write;

pub use parse::{
    Error, ErrorKind, MAX_DEPTH, is_serialized, parse, parse_prefix, parse_prefix_with_max_depth,
    parse_with_max_depth,
};
pub use rewrite::{Replacer, rewrite, rewrite_value};
pub use url::{UrlError, UrlRewrite};
pub use value::Value;

#[cfg(test)]
mod testgen;
