//! The rule every text field a client writes shares: no control characters
//! but tab, line feed and carriage return. Such a character cannot be shown,
//! and U+0000 cannot even be stored in a Postgres text column, so it is
//! refused at the edge, before anything is decided or stored.

/// The message shown in the error body's `fields` for such a text.
pub const CONTROL_CHARACTER: &str =
    "must not contain control characters (tab, line feed and carriage return are allowed)";

/// Whether `c` is refused in a text field: a Unicode control character
/// (general category Cc: U+0000–U+001F, U+007F–U+009F) other than tab, line
/// feed and carriage return.
pub fn is_refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Checks a text field.
///
/// # Errors
/// [`CONTROL_CHARACTER`] when the text holds a refused character.
pub fn check(s: &str) -> Result<(), &'static str> {
    if s.chars().any(is_refused) {
        Err(CONTROL_CHARACTER)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_but_tab_and_line_breaks_are_refused() {
        assert_eq!(check("a\tb\nc\r\nd"), Ok(()));
        assert_eq!(check("plain text, é, 漢字, 🙂"), Ok(()));
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            if !matches!(c, '\t' | '\n' | '\r') {
                assert_eq!(check(&format!("x{c}y")), Err(CONTROL_CHARACTER), "{c:?}");
            }
        }
        assert_eq!(check("D\u{0}"), Err(CONTROL_CHARACTER));
    }
}
