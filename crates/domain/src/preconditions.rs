//! Conditional requests on documents (RFC 9110 §13): `If-Match` and
//! `If-None-Match` against a document's revision, whose strong entity tag
//! is `"<revision>"`.
//!
//! [`Preconditions::evaluate`] is the whole decision, a pure function of
//! the field values, the current revision and the method; the use cases
//! keep only the atomicity (a write names the revision the decision was
//! made on as its expected revision, so the store's compare refuses it if
//! the document changed in between). The HTTP layer only collects the
//! field lines.
//!
//! `If-Modified-Since` and `If-Unmodified-Since` are ignored: documents are
//! served without `Last-Modified` (RFC 9110 §13.1.3, §13.1.4).

/// The conditional headers of a request on one document.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    if_match: Option<EntityTags>,
    if_none_match: Option<EntityTags>,
}

/// What the preconditions decide for a document that exists (RFC 9110
/// §13.2.2). A document that does not exist is a 404 whatever the
/// preconditions (§13.2.1: they only apply where the answer would be 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Perform the method.
    Proceed,
    /// 304 (`GET` and `HEAD` only).
    NotModified,
    /// 412, nothing done.
    Failed,
}

impl Preconditions {
    /// The preconditions of a request whose `If-Match` and `If-None-Match`
    /// fields have these field lines (each `None` when it is not visible
    /// ASCII; no line at all: the field is absent).
    pub fn from_field_lines<'a>(
        if_match: impl IntoIterator<Item = Option<&'a str>>,
        if_none_match: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Self {
        Self {
            if_match: entity_tags(if_match),
            if_none_match: entity_tags(if_none_match),
        }
    }

    /// Whether every existing revision meets the preconditions (none, or
    /// only `If-Match: *`): the write need not name a revision.
    pub fn hold_for_any_revision(&self) -> bool {
        self.if_none_match.is_none() && matches!(self.if_match, None | Some(EntityTags::Any))
    }

    /// The only revision `If-Match` can match, when it names exactly one:
    /// a write may then name it as its expected revision without reading
    /// the current one first.
    pub fn pinned_revision(&self) -> Option<u64> {
        let Some(EntityTags::List(tags)) = &self.if_match else {
            return None;
        };
        let mut revisions = tags
            .iter()
            .filter(|tag| !tag.weak)
            .filter_map(|tag| parse_revision(&tag.opaque));
        let first = revisions.next()?;
        revisions.all(|other| other == first).then_some(first)
    }

    /// RFC 9110 §13.2.2 for a document whose current revision is `current`;
    /// `safe` for `GET` and `HEAD`:
    /// 1. `If-Match` (§13.1.1) holds for `*` or a listed tag that matches
    ///    by strong comparison (a weak tag never does); else 412.
    /// 2. `If-None-Match` (§13.1.2) fails for `*` or a listed tag that
    ///    matches by weak comparison; then 304 for `GET`/`HEAD`, else 412.
    pub fn evaluate(&self, current: u64, safe: bool) -> Decision {
        let revision = current.to_string();
        if let Some(EntityTags::List(tags)) = &self.if_match {
            if !tags.iter().any(|tag| !tag.weak && tag.opaque == revision) {
                return Decision::Failed;
            }
        }
        let unchanged = match &self.if_none_match {
            None => false,
            Some(EntityTags::Any) => true,
            Some(EntityTags::List(tags)) => tags.iter().any(|tag| tag.opaque == revision),
        };
        match (unchanged, safe) {
            (false, _) => Decision::Proceed,
            (true, true) => Decision::NotModified,
            (true, false) => Decision::Failed,
        }
    }
}

/// A revision written exactly as this API writes it (no sign, no leading zero).
fn parse_revision(opaque: &str) -> Option<u64> {
    opaque
        .parse::<u64>()
        .ok()
        .filter(|revision| revision.to_string() == opaque)
}

/// The value of `If-Match` / `If-None-Match`.
#[derive(Debug, PartialEq, Eq)]
enum EntityTags {
    /// `*`.
    Any,
    /// The entity tags listed (malformed members are skipped).
    List(Vec<EntityTag>),
}

#[derive(Debug, PartialEq, Eq)]
struct EntityTag {
    weak: bool,
    opaque: String,
}

/// Parses every field line of one field into one list; `None` without any.
fn entity_tags<'a>(lines: impl IntoIterator<Item = Option<&'a str>>) -> Option<EntityTags> {
    let mut lines = lines.into_iter().peekable();
    lines.peek()?;
    let mut tags = Vec::new();
    for line in lines {
        // A value that is not visible ASCII lists no usable tag.
        let Some(text) = line else { continue };
        if text.trim() == "*" {
            return Some(EntityTags::Any);
        }
        parse_tag_list(text, &mut tags);
    }
    Some(EntityTags::List(tags))
}

fn parse_tag_list(mut rest: &str, tags: &mut Vec<EntityTag>) {
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return;
        }
        let (weak, tail) = match rest.strip_prefix("W/") {
            Some(tail) => (true, tail),
            None => (false, rest),
        };
        if let Some((opaque, after)) = tail
            .strip_prefix('"')
            .and_then(|quoted| quoted.split_once('"'))
        {
            tags.push(EntityTag {
                weak,
                opaque: opaque.to_owned(),
            });
            rest = after;
        } else {
            // Malformed member: skip to the next one.
            match rest.split_once(',') {
                Some((_, after)) => rest = after,
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(
        if_match: Option<&'static str>,
        if_none_match: Option<&'static str>,
    ) -> Preconditions {
        Preconditions::from_field_lines(if_match.map(Some), if_none_match.map(Some))
    }

    #[test]
    fn without_conditions_every_method_proceeds() {
        let none = conditions(None, None);
        assert!(none.hold_for_any_revision());
        assert_eq!(none.evaluate(3, true), Decision::Proceed);
        assert_eq!(none.evaluate(3, false), Decision::Proceed);
    }

    #[test]
    fn if_match_uses_the_strong_comparison() {
        use Decision::{Failed, Proceed};
        for (if_match, expected) in [
            ("*", Proceed),
            ("\"3\"", Proceed),
            ("\"1\", \"3\"", Proceed),
            ("\"2\"", Failed),
            ("W/\"3\"", Failed),
            ("\"03\"", Failed),
            ("3", Failed),
            ("", Failed),
        ] {
            for safe in [true, false] {
                let decision = conditions(Some(if_match), None).evaluate(3, safe);
                assert_eq!(decision, expected, "If-Match: {if_match} (safe: {safe})");
            }
        }
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_is_304_only_for_safe_methods() {
        use Decision::{Failed, NotModified, Proceed};
        for (if_none_match, read, write) in [
            ("*", NotModified, Failed),
            ("\"3\"", NotModified, Failed),
            ("W/\"3\"", NotModified, Failed),
            ("\"1\", W/\"3\"", NotModified, Failed),
            ("\"2\"", Proceed, Proceed),
            ("W/\"2\", \"4\"", Proceed, Proceed),
            ("garbage", Proceed, Proceed),
        ] {
            let conditions = conditions(None, Some(if_none_match));
            assert!(!conditions.hold_for_any_revision());
            assert_eq!(
                conditions.evaluate(3, true),
                read,
                "If-None-Match: {if_none_match}"
            );
            assert_eq!(
                conditions.evaluate(3, false),
                write,
                "If-None-Match: {if_none_match}"
            );
        }
    }

    #[test]
    fn if_match_is_evaluated_before_if_none_match() {
        // §13.2.2: a failed If-Match is 412 even where If-None-Match alone
        // would be 304; a held If-Match leaves the decision to If-None-Match.
        let stale = conditions(Some("\"2\""), Some("\"3\""));
        assert_eq!(stale.evaluate(3, true), Decision::Failed);
        let current = conditions(Some("\"3\""), Some("\"3\""));
        assert_eq!(current.evaluate(3, true), Decision::NotModified);
        assert_eq!(current.evaluate(3, false), Decision::Failed);
        let any = conditions(Some("*"), Some("*"));
        assert_eq!(any.evaluate(3, false), Decision::Failed);
        let other = conditions(Some("*"), Some("\"2\""));
        assert_eq!(other.evaluate(3, false), Decision::Proceed);
    }

    #[test]
    fn a_single_strong_revision_in_if_match_is_pinned() {
        assert_eq!(conditions(Some("\"4\""), None).pinned_revision(), Some(4));
        assert_eq!(
            conditions(Some("\"4\", W/\"5\", \"x\""), None).pinned_revision(),
            Some(4)
        );
        assert_eq!(
            conditions(Some("\"4\", \"4\""), None).pinned_revision(),
            Some(4)
        );
        for if_match in ["*", "\"4\", \"5\"", "W/\"4\"", "\"04\""] {
            assert_eq!(
                conditions(Some(if_match), None).pinned_revision(),
                None,
                "{if_match}"
            );
        }
        assert_eq!(conditions(None, Some("\"4\"")).pinned_revision(), None);
        assert!(conditions(Some("*"), None).hold_for_any_revision());
        assert!(!conditions(Some("\"4\""), None).hold_for_any_revision());
    }

    fn tags(values: &[&'static str]) -> Option<EntityTags> {
        entity_tags(values.iter().map(|value| Some(*value)))
    }

    fn tag(weak: bool, opaque: &str) -> EntityTag {
        EntityTag {
            weak,
            opaque: opaque.into(),
        }
    }

    #[test]
    fn entity_tag_lists_are_parsed_and_malformed_members_skipped() {
        assert_eq!(tags(&[]), None);
        assert_eq!(tags(&["*"]), Some(EntityTags::Any));
        assert_eq!(
            tags(&[r#""1", W/"2" ,junk, "x,y""#, r#""3""#]),
            Some(EntityTags::List(vec![
                tag(false, "1"),
                tag(true, "2"),
                tag(false, "x,y"),
                tag(false, "3"),
            ]))
        );
        assert_eq!(tags(&["3"]), Some(EntityTags::List(vec![])));
        // A field line that is not visible ASCII lists nothing; the field
        // is still present.
        assert_eq!(
            entity_tags([None, Some("\"1\"")]),
            Some(EntityTags::List(vec![tag(false, "1")]))
        );
        assert_eq!(entity_tags([None]), Some(EntityTags::List(vec![])));
    }

    #[test]
    fn revisions_are_canonical_decimals() {
        assert_eq!(parse_revision("12"), Some(12));
        for bad in ["", "+1", "01", "-1", "x", "1.0"] {
            assert_eq!(parse_revision(bad), None, "{bad:?}");
        }
    }
}
