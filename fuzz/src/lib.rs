//! What the fuzz targets share: how an input is read.
//!
//! Every target takes two kinds of input. One starting with `T` is text:
//! the given number of lines, then the rest as a body, so that seeds in
//! `corpus/` can be real headers and bodies written by hand. Any other
//! input is read with `arbitrary` into the target's structured input.

use arbitrary::{Arbitrary, Unstructured};

/// The input as text fields: `T`, then `lines` lines, then the body.
pub enum Input<'a, S> {
    Text(Vec<&'a str>, &'a [u8]),
    Structured(S),
}

/// Reads `data` as `lines` text lines and a body, or as an `S`; `None`
/// when it is neither (such inputs are uninteresting, not failures).
pub fn read<'a, S: Arbitrary<'a>>(data: &'a [u8], lines: usize) -> Option<Input<'a, S>> {
    if let Some(text) = data.strip_prefix(b"T") {
        let mut fields = Vec::with_capacity(lines);
        let mut rest = text;
        for _ in 0..lines {
            let end = rest.iter().position(|b| *b == b'\n')?;
            fields.push(std::str::from_utf8(&rest[..end]).ok()?);
            rest = &rest[end + 1..];
        }
        return Some(Input::Text(fields, rest));
    }
    S::arbitrary_take_rest(Unstructured::new(data))
        .ok()
        .map(Input::Structured)
}
