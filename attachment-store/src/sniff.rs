//! What a file is, from its first bytes: the media type an attachment is stored and served
//! with. The client's `Content-Type` and file extension are never trusted.

/// How many leading bytes [`media_type`] looks at (text is checked this far).
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The media type of a file that starts with `head` (at most [`SNIFF_BYTES`] of it; `whole`
/// when `head` is the entire file). `None`: not a type this looks for (binary data of an
/// unknown format).
///
/// Formats are recognised by their signatures (PNG, JPEG, GIF, WebP, PDF, ZIP, gzip); anything
/// else that is UTF-8 text without control characters other than tab, line breaks and form
/// feed is `text/plain`, whatever markup it holds (HTML is served as plain text, as a download).
#[must_use]
pub fn media_type(head: &[u8], whole: bool) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"PK\x05\x06", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
    ];
    if let Some((_, media_type)) = SIGNATURES
        .iter()
        .find(|(signature, _)| head.starts_with(signature))
    {
        return Some(media_type);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    is_text(head, whole).then_some("text/plain")
}

/// UTF-8 (a character cut at the end of a partial `head` is fine) with no control character
/// but tab, line feed, carriage return and form feed; a byte order mark may lead.
fn is_text(head: &[u8], whole: bool) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character at the end of the sniffed part: the rest follows.
        Err(error) if !whole && error.error_len().is_none() => {
            match std::str::from_utf8(&head[..error.valid_up_to()]) {
                Ok(text) => text,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_known_by_their_signatures_not_their_names() {
        assert_eq!(
            media_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", true),
            Some("image/png")
        );
        assert_eq!(
            media_type(b"\xff\xd8\xff\xe0\0\x10JFIF", true),
            Some("image/jpeg")
        );
        assert_eq!(media_type(b"GIF89a\x01\0", true), Some("image/gif"));
        assert_eq!(
            media_type(b"RIFF\x24\0\0\0WEBPVP8 ", true),
            Some("image/webp")
        );
        assert_eq!(media_type(b"%PDF-1.7\n", true), Some("application/pdf"));
        assert_eq!(
            media_type(b"PK\x03\x04\x14\0", true),
            Some("application/zip")
        );
        assert_eq!(
            media_type(b"\x1f\x8b\x08\0", true),
            Some("application/gzip")
        );
    }

    #[test]
    fn text_is_utf8_without_control_characters() {
        assert_eq!(media_type(b"hello\r\n\tworld\n", true), Some("text/plain"));
        assert_eq!(media_type("héllo ✓".as_bytes(), true), Some("text/plain"));
        assert_eq!(
            media_type(b"<html><script>x</script>", true),
            Some("text/plain")
        );
        assert_eq!(
            media_type(b"\xef\xbb\xbfwith a BOM", true),
            Some("text/plain")
        );
        // An executable, a NUL, an escape sequence, invalid UTF-8: none of them text.
        assert_eq!(media_type(b"\x7fELF\x02\x01\x01", true), None);
        assert_eq!(media_type(b"MZ\x90\0\x03", true), None);
        assert_eq!(media_type(b"text\0more", true), None);
        assert_eq!(media_type(b"\x1b[31mred", true), None);
        assert_eq!(media_type(b"caf\xe9", true), None);
        assert_eq!(media_type(b"", true), None);
    }

    #[test]
    fn a_character_cut_at_the_end_of_a_partial_head_is_still_text() {
        let head = "aé".as_bytes();
        let cut = &head[..head.len() - 1];
        assert_eq!(media_type(cut, false), Some("text/plain"));
        assert_eq!(media_type(cut, true), None);
    }
}
