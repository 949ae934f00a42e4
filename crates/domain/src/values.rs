//! Validated values. Each is parsed once at the boundary (`parse`), so
//! everything past a handler holds only valid values ("parse, don't validate").

use std::fmt;

/// Why a raw input is not a valid value. The message is safe to show to the
/// client: it never repeats the input itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The input is too short or too long (counted in characters).
    #[error("must be {min} to {max} characters long")]
    Length {
        /// Smallest accepted length.
        min: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The input has the right length but the wrong shape.
    #[error("{0}")]
    Format(&'static str),
}

/// The prefix of every tenant collection: `org_<canonical name>`.
pub const COLLECTION_PREFIX: &str = "org_";

/// An organization's name.
///
/// Rules: surrounding whitespace is trimmed; 2 to 64 characters; ASCII
/// letters, digits, spaces, hyphens and underscores only; starts and ends with
/// a letter or digit.
///
/// Its [canonical form](Self::canonical) decides uniqueness and the tenant
/// collection: lowercase, with each run of spaces, hyphens and underscores
/// replaced by one underscore. `Acme Corp`, `acme-corp` and `ACME__corp` are
/// therefore the same organization name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrganizationName {
    display: String,
    canonical: String,
}

impl OrganizationName {
    /// Smallest accepted length, in characters.
    pub const MIN_LEN: usize = 2;
    /// Largest accepted length, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a raw name (see the type's rules).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let display = raw.trim();
        let len = display.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValueError::Length {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        if !display
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || is_separator(c))
        {
            return Err(ValueError::Format(
                "may contain only ASCII letters, digits, spaces, hyphens and underscores",
            ));
        }
        let starts_and_ends_alnum = display
            .chars()
            .next()
            .zip(display.chars().last())
            .is_some_and(|(first, last)| {
                first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
            });
        if !starts_and_ends_alnum {
            return Err(ValueError::Format(
                "must start and end with a letter or digit",
            ));
        }
        Ok(Self {
            canonical: canonicalize(display),
            display: display.to_owned(),
        })
    }

    /// The name as the organization spelled it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The canonical form: lowercase, separators folded to one `_`.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The tenant collection this name maps to: `org_<canonical>`.
    pub fn collection_name(&self) -> CollectionName {
        CollectionName(format!("{COLLECTION_PREFIX}{}", self.canonical))
    }
}

impl fmt::Display for OrganizationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// A search fragment for organization names, in canonical form (issue #17):
/// trimmed, lowercase, each run of spaces, hyphens and underscores folded to
/// one `_`, exactly as [`OrganizationName::canonical`] folds a name, so that a
/// search is case- and separator-insensitive as names are.
///
/// 1 to 64 characters of ASCII letters, digits and separators.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameFragment(String);

impl NameFragment {
    /// Parses a raw search text.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if !(1..=OrganizationName::MAX_LEN).contains(&len) {
            return Err(ValueError::Length {
                min: 1,
                max: OrganizationName::MAX_LEN,
            });
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || is_separator(c))
        {
            return Err(ValueError::Format(
                "may contain only ASCII letters, digits, spaces, hyphens and underscores",
            ));
        }
        Ok(Self(canonicalize(trimmed)))
    }

    /// The canonical fragment.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a canonical name starts with this fragment.
    pub fn is_prefix_of(&self, canonical: &str) -> bool {
        canonical.starts_with(&self.0)
    }

    /// Whether a canonical name contains this fragment.
    pub fn is_in(&self, canonical: &str) -> bool {
        canonical.contains(&self.0)
    }

    /// The exclusive upper bound of the canonical names this fragment is a
    /// prefix of: the fragment followed by `~`, which sorts after every
    /// character a canonical name may hold (`0-9`, `_`, `a-z`), so that a
    /// prefix search is the index range `[fragment, upper_bound)`.
    pub fn prefix_upper_bound(&self) -> String {
        format!("{}~", self.0)
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '_')
}

fn canonicalize(display: &str) -> String {
    let mut canonical = String::with_capacity(display.len());
    let mut in_separator_run = false;
    for c in display.chars() {
        if is_separator(c) {
            if !in_separator_run {
                canonical.push('_');
            }
            in_separator_run = true;
        } else {
            canonical.push(c.to_ascii_lowercase());
            in_separator_run = false;
        }
    }
    canonical
}

/// The name of a tenant collection (or table).
///
/// Built from an [`OrganizationName`], it is always `org_` followed by
/// lowercase letters, digits and underscores, which is a valid MongoDB
/// collection name. [`CollectionName::parse`] accepts a stored name back,
/// checking MongoDB's rules: not empty, no `$`, no NUL, no `system.` prefix,
/// at most 255 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionName(String);

impl CollectionName {
    /// Largest accepted length in bytes (MongoDB's namespace limit).
    pub const MAX_BYTES: usize = 255;

    /// Accepts a stored collection name, checking MongoDB's naming rules.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.is_empty() || raw.len() > Self::MAX_BYTES {
            return Err(ValueError::Length {
                min: 1,
                max: Self::MAX_BYTES,
            });
        }
        if raw.contains('$') || raw.contains('\0') {
            return Err(ValueError::Format("must not contain '$' or NUL"));
        }
        if raw.starts_with("system.") {
            return Err(ValueError::Format("must not start with 'system.'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The collection name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An admin's email address, compared case-insensitively.
///
/// Rules: trimmed and lowercased; at most 254 characters; one `@`; a local
/// part of 1 to 64 characters from the unquoted RFC 5322 set (letters,
/// digits, ``.!#$%&'*+/=?^_`{|}~-``, no leading, trailing or doubled dot);
/// a domain of two or more dot-separated labels of letters, digits and
/// hyphens (1 to 63 characters, not starting or ending with a hyphen).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AdminEmail(String);

impl AdminEmail {
    /// Largest accepted length, in characters.
    pub const MAX_LEN: usize = 254;

    /// Parses a raw address (see the type's rules).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let email = raw.trim().to_ascii_lowercase();
        if email.is_empty() || email.len() > Self::MAX_LEN {
            return Err(ValueError::Length {
                min: 3,
                max: Self::MAX_LEN,
            });
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(ValueError::Format(
                "must be an address like name@example.com",
            ));
        };
        if !is_valid_local_part(local) {
            return Err(ValueError::Format(
                "has an invalid part before '@' (letters, digits and .!#$%&'*+/=?^_`{|}~- only, 1 to 64 characters, no leading, trailing or doubled dot)",
            ));
        }
        if !is_valid_domain(domain) {
            return Err(ValueError::Format(
                "has an invalid domain after '@' (like example.com: two or more labels of letters, digits and hyphens)",
            ));
        }
        Ok(Self(email))
    }

    /// The normalised (lowercase) address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AdminEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
    (1..=64).contains(&local.len())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let tld_not_numeric = labels
        .last()
        .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    labels.len() >= 2 && labels.iter().all(label_ok) && tld_not_numeric
}

/// A plaintext password on its way to being hashed or verified.
///
/// Rules: 8 to 128 characters (OWASP: at least 8, allow long passphrases;
/// the upper bound keeps hashing cost bounded). Not trimmed. `Debug` never
/// prints it, and it has no `Display` or `Serialize`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Smallest accepted length, in characters.
    pub const MIN_LEN: usize = 8;
    /// Largest accepted length, in characters.
    pub const MAX_LEN: usize = 128;

    /// Parses a raw password (see the type's rules).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(ValueError::Length {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plaintext, for the password hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format (e.g. `$argon2id$v=19$...`).
///
/// Opaque to the domain: stores keep it, the auth crate makes and verifies
/// it. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by the hasher or read from storage.
    pub fn from_phc_string(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storage and verification only.
    pub fn as_phc_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn organization_name_is_trimmed_and_canonicalized() {
        let name = OrganizationName::parse("  Acme -- Corp_2 ").unwrap();
        assert_eq!(name.as_str(), "Acme -- Corp_2");
        assert_eq!(name.canonical(), "acme_corp_2");
        assert_eq!(name.collection_name().as_str(), "org_acme_corp_2");
    }

    #[test]
    fn names_differing_in_case_or_separators_share_a_collection() {
        let a = OrganizationName::parse("Acme Corp").unwrap();
        let b = OrganizationName::parse("acme-corp").unwrap();
        let c = OrganizationName::parse("ACME__CORP").unwrap();
        assert_eq!(a.collection_name(), b.collection_name());
        assert_eq!(b.collection_name(), c.collection_name());
    }

    #[test]
    fn organization_name_rejects_bad_input() {
        for bad in [
            "", " ", "a", "-acme", "acme_", "acme$", "ac.me", "ac\0me", "système",
        ] {
            assert!(
                OrganizationName::parse(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(OrganizationName::parse(&"a".repeat(65)).is_err());
        assert!(OrganizationName::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn collection_name_parse_enforces_mongodb_rules() {
        assert!(CollectionName::parse("org_acme").is_ok());
        for bad in ["", "a$b", "a\0b", "system.users"] {
            assert!(CollectionName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(CollectionName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn email_is_normalised_to_lowercase() {
        let email = AdminEmail::parse("  Jane.Doe+orgs@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "jane.doe+orgs@example.com");
    }

    #[test]
    fn email_rejects_bad_input() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "jane@",
            "jane@localhost",
            "jane@@example.com",
            "ja ne@example.com",
            ".jane@example.com",
            "ja..ne@example.com",
            "jane@-example.com",
            "jane@example..com",
            "jane@1.2.3.4",
        ] {
            assert!(AdminEmail::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn password_bounds_and_redaction() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let password = Password::parse("correct horse battery").unwrap();
        assert_eq!(password.expose(), "correct horse battery");
        assert!(!format!("{password:?}").contains("horse"));
        let hash = PasswordHash::from_phc_string("$argon2id$secret".into());
        assert!(!format!("{hash:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn every_accepted_name_maps_to_a_valid_collection(raw in "\\PC{0,80}") {
            if let Ok(name) = OrganizationName::parse(&raw) {
                let collection = name.collection_name();
                prop_assert!(CollectionName::parse(collection.as_str()).is_ok());
                prop_assert!(collection.as_str().starts_with(COLLECTION_PREFIX));
                prop_assert!(collection
                    .as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            }
        }

        #[test]
        fn canonical_form_ignores_case_and_separator_style(raw in "[A-Za-z0-9]{1,10}([ _-]{1,3}[A-Za-z0-9]{1,10}){0,3}") {
            prop_assume!(raw.len() >= 2);
            let name = OrganizationName::parse(&raw).unwrap();
            let respelled = raw.to_ascii_uppercase().replace([' ', '-'], "_");
            let respelled = OrganizationName::parse(&respelled).unwrap();
            prop_assert_eq!(respelled.canonical(), name.canonical());
        }

        #[test]
        fn accepted_emails_are_lowercase_and_reparse_to_themselves(raw in "[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,10}\\.[A-Za-z]{2,6}") {
            if let Ok(email) = AdminEmail::parse(&raw) {
                prop_assert_eq!(email.as_str(), raw.to_ascii_lowercase());
                prop_assert_eq!(AdminEmail::parse(email.as_str()).unwrap(), email);
            }
        }
    }
}
