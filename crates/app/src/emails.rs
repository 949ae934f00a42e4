//! The emails orgsvc sends (issue #14), rendered from the plain-text and
//! HTML templates in `crates/app/templates/` into [`OutboxMessage`]s that a
//! use case stores in the same write as the token they carry.
//!
//! Links point to the customer's front end, not to orgsvc: each kind of
//! link is a [`LinkTemplate`] from configuration (`email.invitation_url`,
//! `email.password_reset_url`, `email.verification_url`) whose `{token}`
//! is replaced by the token. Values put into the HTML body are escaped.

use std::fmt;

use chrono::{DateTime, Utc};
use orgsvc_domain::{AdminEmail, Invitation, OrganizationName, OutboxMessage};

/// The placeholder a [`LinkTemplate`] carries.
pub const TOKEN_PLACEHOLDER: &str = "{token}";

/// A link template: an absolute `http` or `https` URL containing
/// [`TOKEN_PLACEHOLDER`] (for example
/// `https://app.example.com/invite?token={token}`).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

/// Why a text is not a [`LinkTemplate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkTemplateError {
    /// Not an absolute `http://` or `https://` URL with a host (and no
    /// userinfo: a link must not carry credentials, nor hide its host
    /// behind them).
    #[error("must be an absolute http:// or https:// URL with a host")]
    NotHttpUrl,
    /// No `{token}` in it.
    #[error("must contain {{token}} where the token goes")]
    NoTokenPlaceholder,
    /// Spaces or control characters, which a URL cannot hold.
    #[error("must not contain spaces or control characters")]
    InvalidCharacter,
}

impl LinkTemplate {
    /// Parses a template (see the type).
    pub fn parse(raw: &str) -> Result<Self, LinkTemplateError> {
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or(LinkTemplateError::NotHttpUrl)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains(['@', '{', '}']) {
            return Err(LinkTemplateError::NotHttpUrl);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LinkTemplateError::InvalidCharacter);
        }
        if !raw.contains(TOKEN_PLACEHOLDER) {
            return Err(LinkTemplateError::NoTokenPlaceholder);
        }
        Ok(Self(raw.to_owned()))
    }

    /// `http://localhost:3000/<page>?token={token}`: a link's development
    /// default (a front end on its usual development port). `page` is a
    /// plain path segment such as `invite`.
    pub fn development(page: &str) -> Self {
        Self(format!(
            "http://localhost:3000/{page}?token={TOKEN_PLACEHOLDER}"
        ))
    }

    /// The template with every `{token}` replaced by `token` (URL-safe
    /// base64, so it needs no escaping).
    pub fn link(&self, token: &str) -> String {
        self.0.replace(TOKEN_PLACEHOLDER, token)
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LinkTemplate").field(&self.0).finish()
    }
}

/// Where each kind of email's link points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailLinks {
    /// `email.invitation_url`: accepting an invitation.
    pub invitation: LinkTemplate,
    /// `email.password_reset_url`: choosing a new password.
    pub password_reset: LinkTemplate,
    /// `email.verification_url`: verifying an email address.
    pub email_verification: LinkTemplate,
}

/// One email's two bodies, kept in the repository.
struct Template {
    subject: &'static str,
    text: &'static str,
    html: &'static str,
}

const INVITATION: Template = Template {
    subject: "Invitation to join {{organization}}",
    text: include_str!("../templates/invitation.txt"),
    html: include_str!("../templates/invitation.html"),
};
const PASSWORD_RESET: Template = Template {
    subject: "Reset your password",
    text: include_str!("../templates/password_reset.txt"),
    html: include_str!("../templates/password_reset.html"),
};
const EMAIL_VERIFICATION: Template = Template {
    subject: "Verify your email address",
    text: include_str!("../templates/email_verification.txt"),
    html: include_str!("../templates/email_verification.html"),
};
const EMAIL_CHANGED: Template = Template {
    subject: "Your sign-in email was changed",
    text: include_str!("../templates/email_changed.txt"),
    html: include_str!("../templates/email_changed.html"),
};

impl Template {
    /// The message to `to`, every `{{name}}` of `values` filled in (escaped
    /// in the HTML body).
    fn render(&self, to: AdminEmail, values: &[(&str, &str)], now: DateTime<Utc>) -> OutboxMessage {
        let fill = |template: &str, escape: fn(&str) -> String| {
            values
                .iter()
                .fold(template.to_owned(), |text, (name, value)| {
                    text.replace(&format!("{{{{{name}}}}}"), &escape(value))
                })
        };
        OutboxMessage::new(
            to,
            fill(self.subject, str::to_owned),
            fill(self.text, str::to_owned),
            fill(self.html, escape_html),
            now,
        )
    }
}

/// `at` as people read it: `2026-12-07 09:30 UTC`.
fn human_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Escapes text for an HTML element or a double-quoted attribute.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

impl EmailLinks {
    /// The email carrying `invitation` with the link that accepts it with
    /// `token`; `inviter` is the email of the admin who invited.
    pub fn invitation(
        &self,
        invitation: &Invitation,
        organization: &OrganizationName,
        inviter: &AdminEmail,
        token: &str,
        now: DateTime<Utc>,
    ) -> OutboxMessage {
        let values = [
            ("organization", organization.to_string()),
            ("role", invitation.role.as_str().to_owned()),
            ("inviter", inviter.to_string()),
            ("link", self.invitation.link(token)),
            ("expires_at", human_time(invitation.expires_at)),
        ];
        INVITATION.render(invitation.email.clone(), &borrowed(&values), now)
    }

    /// The password reset of the admin `to`, with the link to choose a
    /// new password with `token`, valid until `expires_at`.
    pub fn password_reset(
        &self,
        to: AdminEmail,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> OutboxMessage {
        let link = self.password_reset.link(token);
        link_to_address(&PASSWORD_RESET, to, link, expires_at, now)
    }

    /// The verification of the address `to`, with the link that verifies
    /// it with `token`, valid until `expires_at`.
    pub fn email_verification(
        &self,
        to: AdminEmail,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> OutboxMessage {
        let link = self.email_verification.link(token);
        link_to_address(&EMAIL_VERIFICATION, to, link, expires_at, now)
    }
}

/// An email to the address `to` about that address, carrying `link`
/// (valid until `expires_at`).
fn link_to_address(
    template: &Template,
    to: AdminEmail,
    link: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let values = [
        ("email", to.to_string()),
        ("link", link),
        ("expires_at", human_time(expires_at)),
    ];
    template.render(to, &borrowed(&values), now)
}

/// The notice to an admin's former address `old_email` that the sign-in
/// email of their account in `organization` is now `new_email` (no link:
/// nothing to click in an email that may reach the wrong person).
pub fn email_changed(
    old_email: AdminEmail,
    new_email: &AdminEmail,
    organization: &OrganizationName,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let values = [
        ("organization", organization.to_string()),
        ("old_email", old_email.to_string()),
        ("new_email", new_email.to_string()),
    ];
    EMAIL_CHANGED.render(old_email, &borrowed(&values), now)
}

fn borrowed<'a>(values: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    values
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use orgsvc_domain::{AdminId, AdminRole, OrganizationId};

    use super::*;

    fn links() -> EmailLinks {
        EmailLinks {
            invitation: LinkTemplate::parse("https://app.example.com/invite?token={token}")
                .unwrap(),
            password_reset: LinkTemplate::parse("https://app.example.com/reset#{token}").unwrap(),
            email_verification: LinkTemplate::parse("http://localhost:3000/verify/{token}")
                .unwrap(),
        }
    }

    fn email(raw: &str) -> AdminEmail {
        AdminEmail::parse(raw).unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).unwrap()
    }

    /// No placeholder left unfilled in any part of `message`.
    fn assert_filled(message: &OutboxMessage) {
        for part in [&message.subject, &message.text_body, &message.html_body] {
            assert!(!part.contains("{{"), "unfilled placeholder in {part}");
        }
    }

    #[test]
    fn link_templates_are_absolute_http_urls_with_a_token_placeholder() {
        for good in [
            "https://app.example.com/invite?token={token}",
            "http://localhost:8080/reset/{token}",
        ] {
            assert_eq!(LinkTemplate::parse(good).unwrap().as_str(), good);
        }
        for (bad, error) in [
            (
                "app.example.com/invite?token={token}",
                LinkTemplateError::NotHttpUrl,
            ),
            ("ftp://example.com/{token}", LinkTemplateError::NotHttpUrl),
            ("https:///path/{token}", LinkTemplateError::NotHttpUrl),
            ("https://{token}", LinkTemplateError::NotHttpUrl),
            (
                "https://user:pw@app.example.com/{token}",
                LinkTemplateError::NotHttpUrl,
            ),
            (
                "https://app.example.com/invite",
                LinkTemplateError::NoTokenPlaceholder,
            ),
            (
                "https://app.example.com/in vite/{token}",
                LinkTemplateError::InvalidCharacter,
            ),
        ] {
            assert_eq!(LinkTemplate::parse(bad), Err(error), "{bad}");
        }
        for page in ["invite", "reset-password", "verify-email"] {
            let development = LinkTemplate::development(page);
            assert_eq!(LinkTemplate::parse(development.as_str()), Ok(development));
        }
        let template = LinkTemplate::parse("https://a.example/x?t={token}&again={token}").unwrap();
        assert_eq!(
            template.link("abc-_"),
            "https://a.example/x?t=abc-_&again=abc-_"
        );
    }

    #[test]
    fn the_invitation_names_the_organization_role_inviter_link_and_expiry() {
        let organization = OrganizationName::parse("Acme Corp").unwrap();
        let invitation = Invitation::new(
            OrganizationId::new(),
            email("new@acme.example"),
            AdminRole::Admin,
            AdminId::new(),
            at() - chrono::TimeDelta::days(7),
            std::time::Duration::from_secs(7 * 24 * 3600),
        );
        let message = links().invitation(
            &invitation,
            &organization,
            &email("owner@acme.example"),
            "TOKEN123",
            at(),
        );
        assert_eq!(message.to, email("new@acme.example"));
        assert_eq!(message.subject, "Invitation to join Acme Corp");
        for body in [&message.text_body, &message.html_body] {
            assert!(
                body.contains("https://app.example.com/invite?token=TOKEN123"),
                "{body}"
            );
            assert!(
                body.contains("Acme Corp") && body.contains("owner@acme.example"),
                "{body}"
            );
            assert!(
                body.contains("as admin") && body.contains("2026-12-07 09:30 UTC"),
                "{body}"
            );
        }
        assert!(message
            .html_body
            .contains("<a href=\"https://app.example.com/invite?token=TOKEN123\">"));
        assert_filled(&message);
    }

    #[test]
    fn the_reset_and_verification_carry_their_own_links() {
        let reset = links().password_reset(email("a@b.example"), "R1", at(), at());
        assert_eq!(reset.subject, "Reset your password");
        assert!(reset.text_body.contains("https://app.example.com/reset#R1"));
        assert!(reset
            .html_body
            .contains("href=\"https://app.example.com/reset#R1\""));
        assert_filled(&reset);

        let verify = links().email_verification(email("a@b.example"), "V1", at(), at());
        assert_eq!(verify.subject, "Verify your email address");
        assert!(verify.text_body.contains("http://localhost:3000/verify/V1"));
        assert!(verify.text_body.contains("a@b.example"));
        assert_filled(&verify);
    }

    #[test]
    fn the_email_change_notice_goes_to_the_old_address_without_a_link() {
        let organization = OrganizationName::parse("acme").unwrap();
        let notice = email_changed(
            email("old@a.example"),
            &email("new@a.example"),
            &organization,
            at(),
        );
        assert_eq!(notice.to, email("old@a.example"));
        assert_eq!(notice.subject, "Your sign-in email was changed");
        assert!(notice
            .text_body
            .contains("from old@a.example to new@a.example"));
        assert!(!notice.text_body.contains("http") && !notice.html_body.contains("href"));
        assert_filled(&notice);
    }

    #[test]
    fn values_are_escaped_in_the_html_body_only() {
        assert_eq!(
            escape_html(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let template = LinkTemplate::parse("https://a.example/?a=1&t={token}").unwrap();
        let links = EmailLinks {
            password_reset: template,
            ..links()
        };
        let reset = links.password_reset(email("a@b.example"), "T", at(), at());
        assert!(reset.text_body.contains("https://a.example/?a=1&t=T"));
        assert!(reset
            .html_body
            .contains("href=\"https://a.example/?a=1&amp;t=T\""));
    }
}
