//! `application/x-www-form-urlencoded` bodies.

use guest_common::url::percent_encode;

/// A form body built field by field, in insertion order.
#[derive(Debug, Default)]
pub struct Form {
    body: String,
}

impl Form {
    /// Appends `key=value`, encoding both.
    pub fn push(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.body.is_empty() {
            self.body.push('&');
        }
        // The WHATWG form serializer's safe set; Stripe decodes `%5B` as `[`.
        percent_encode(&mut self.body, key, b"*-._", true);
        self.body.push('=');
        percent_encode(&mut self.body, value, b"*-._", true);
        self
    }

    /// The encoded body.
    pub fn finish(self) -> String {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_form_fields() {
        let mut form = Form::default();
        form.push("a[b]", "x y&z=1")
            .push("note", "é/ü+%")
            .push("safe", "A-z.0_9*");
        assert_eq!(
            form.finish(),
            "a%5Bb%5D=x+y%26z%3D1&note=%C3%A9%2F%C3%BC%2B%25&safe=A-z.0_9*"
        );
    }
}
