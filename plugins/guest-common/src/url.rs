//! URL building: percent-encoding and joining a base URL with a path.

/// Appends the percent-encoding of `text` to `out`. ASCII letters, digits
/// and the bytes in `unreserved` pass through; a space becomes `+` when
/// `space_as_plus` (form bodies) and `%20` otherwise; everything else,
/// including every byte of a multi-byte character, becomes `%XX`.
pub fn percent_encode(out: &mut String, text: &str, unreserved: &[u8], space_as_plus: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || unreserved.contains(&byte) {
            out.push(byte as char);
        } else if byte == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
    }
}

/// Encodes one path segment, so a provider reference cannot add `/`, `?`
/// or `#` to the URL it is put into.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    percent_encode(&mut out, text, b"-._~", false);
    out
}

/// Joins a configured base URL and a path without doubling the slash.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(path_segment("cs_test_a1"), "cs_test_a1");
        assert_eq!(path_segment("../x y?#é"), "..%2Fx%20y%3F%23%C3%A9");
    }

    #[test]
    fn joins_urls() {
        assert_eq!(join("https://a.test/", "/v1/x"), "https://a.test/v1/x");
        assert_eq!(join("https://a.test", "v1/x"), "https://a.test/v1/x");
    }
}
