//! Finding where a key is in the config text, so every error names the key and its line.

use super::ConfigError;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// 1-based (line, column) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// One step of a key path: a table key or an array index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `window[1].slide` into `window`, `[1]`, `slide`.
fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            out.push(Step::Key(&rest[..b]));
            rest = &rest[b..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(e) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..e].parse() {
                    out.push(Step::Index(i));
                }
                rest = &stripped[e + 1..];
            }
        } else {
            out.push(Step::Key(rest));
        }
    }
    out
}

/// The span of the deepest part of `path` present in the document: the key itself when it exists,
/// otherwise the table that should hold it.
fn span_of(doc: &Spanned<DeTable<'_>>, path: &str) -> Range<usize> {
    let mut best = 0..0;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for step in steps(path) {
        match step {
            Step::Key(k) => {
                let Some(t) = table else { break };
                let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                    break;
                };
                best = key.span();
                value = Some(v);
                table = match v.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                };
            }
            Step::Index(i) => {
                let Some(DeValue::Array(a)) = value.map(|v| v.get_ref()) else {
                    break;
                };
                let Some(item) = a.get(i) else { break };
                best = item.span();
                value = Some(item);
                table = match item.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                };
            }
        }
    }
    best
}

/// The dotted path of the deepest key whose value contains `span`.
fn key_at(doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Option<String> {
    fn walk(t: &DeTable<'_>, span: &Range<usize>, prefix: &str) -> Option<String> {
        for (k, v) in t.iter() {
            let name = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
            let (ks, vs) = (k.span(), v.span());
            let inside = |r: &Range<usize>| r.start <= span.start && span.end <= r.end.max(r.start + 1);
            if inside(&ks) {
                return Some(name);
            }
            match v.get_ref() {
                DeValue::Table(inner) => {
                    if let Some(found) = walk(inner, span, &name) {
                        return Some(found);
                    }
                    if inside(&vs) {
                        return Some(name);
                    }
                }
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        let iname = format!("{name}[{i}]");
                        if let DeValue::Table(inner) = item.get_ref() {
                            if let Some(found) = walk(inner, span, &iname) {
                                return Some(found);
                            }
                        }
                        if inside(&item.span()) {
                            return Some(iname);
                        }
                    }
                }
                _ => {
                    if inside(&vs) {
                        return Some(name);
                    }
                }
            }
        }
        None
    }
    walk(doc.get_ref(), span, "")
}

/// An error from validation, about `key`.
pub fn at_key(text: &str, origin: &str, key: &str, reason: String) -> ConfigError {
    let span = DeTable::parse(text).map(|doc| span_of(&doc, key)).unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    ConfigError { origin: origin.to_string(), line, column, key: Some(key.to_string()), reason }
}

/// A parse or type error from the TOML deserializer.
pub fn from_toml(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    let key = DeTable::parse(text).ok().and_then(|doc| key_at(&doc, &span));
    ConfigError { origin: origin.to_string(), line, column, key, reason: e.message().trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "[pipeline]\nworkers = 2\n\n[[window]]\nname = \"a\"\n\n[[window]]\nname = \"b\"\nslide = \"20s\"\n";

    #[test]
    fn finds_keys_in_arrays_of_tables() {
        let e = at_key(DOC, "x.toml", "window[1].slide", "too big".into());
        assert_eq!((e.line, e.column), (9, 1));
        let e = at_key(DOC, "x.toml", "pipeline.workers", "zero".into());
        assert_eq!(e.line, 2);
        assert_eq!(e.to_string(), "x.toml:2:1: key `pipeline.workers`: zero");
    }

    #[test]
    fn a_missing_key_points_at_its_table() {
        let e = at_key(DOC, "x.toml", "window[0].size", "missing".into());
        assert_eq!(e.line, 4, "{e}");
    }

    #[test]
    fn deserializer_errors_name_the_key() {
        let text = "[pipeline]\nworkers = \"two\"\n";
        let err = toml::from_str::<super::super::Config>(text).unwrap_err();
        let e = from_toml(text, "x.toml", &err);
        assert_eq!(e.line, 2);
        assert_eq!(e.key.as_deref(), Some("pipeline.workers"), "{e}");
    }
}
