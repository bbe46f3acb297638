//! Header lookup over the `(name, value)` lists the WIT uses.

/// The value of the first header called `name`, compared case-insensitively
/// because not every caller lower-cases names even where the WIT says so.
pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_match_ignoring_case() {
        let headers = vec![
            ("Content-Type".to_string(), "a".to_string()),
            ("content-type".to_string(), "b".to_string()),
        ];
        assert_eq!(find(&headers, "content-type"), Some("a"));
        assert_eq!(find(&headers, "x-missing"), None);
    }
}
