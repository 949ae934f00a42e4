//! `orgsvc tenants move <organization> --to shared|collection` and
//! `orgsvc tenants move --all --to shared|collection` (issue #16): moving
//! organizations' documents between the MongoDB layouts.
//!
//! Like the other commands, each opens the configured store and migrates it
//! first; on MongoDB they work while the service runs (document writes to an
//! organization being moved answer 503 with `Retry-After` meanwhile). A move
//! interrupted (the command killed, the machine lost) is completed by the
//! service's reconciliation once its lease expires, or by running the
//! command again. The embedded store has one layout: the commands answer
//! "not applicable" (exit 2).

use std::fmt;
use std::time::{Duration, Instant};

use orgsvc_app::tenant_moves::{self, MoveAllProgress};
use orgsvc_domain::{
    MoveTenantError, OrganizationId, OrganizationName, StoreError, TenantLayout, TenantMove,
};

use crate::config::{Settings, StoreKind};
use crate::key_commands::open;
use crate::startup::StartupError;

/// How often `--all` reports its progress at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Why a tenant command failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantCommandError {
    /// The settings, the store or the command line (exit code of
    /// [`StartupError::exit_code`]: 2 for usage, e.g. an unknown
    /// organization or a store with one layout).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The organization is busy with another change: run again later
    /// (exit 1).
    #[error("organization {0} is busy with another change (a rename, a deletion or a move the other way); run the command again later")]
    Busy(String),
    /// `--all` skipped busy organizations (exit 1; running again moves
    /// them, and finds the others moved).
    #[error("{0} organizations were skipped (busy with another change, or deleted meanwhile); run the command again to move the rest")]
    Skipped(u64),
    /// The store failed part-way (exit 1); running again resumes.
    #[error("the move failed; running the command again resumes it")]
    Failed(#[source] StoreError),
}

impl TenantCommandError {
    /// The process exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Startup(error) => error.exit_code(),
            Self::Busy(_) | Self::Skipped(_) | Self::Failed(_) => 1,
        }
    }
}

/// Moves the documents of `organization` (its name, or its id) to `to`.
///
/// # Errors
/// Usage errors (exit 2) for a name that is no organization's and for a
/// store with one layout; [`TenantCommandError::Busy`] while another change
/// runs on it; the store's failures.
pub async fn move_one(
    settings: &Settings,
    organization: &str,
    to: TenantLayout,
) -> Result<TenantMove, TenantCommandError> {
    let target = parse_target(organization)?;
    ensure_applicable(settings)?;
    let store = open(settings).await?;
    let moved = match &target {
        Target::Id(id) => tenant_moves::move_organization(store.as_ref(), *id, to).await,
        Target::Name(name) => tenant_moves::move_organization_named(store.as_ref(), name, to).await,
    };
    moved.map_err(|error| command_error(error, organization))
}

/// Moves every organization's documents to `to`, in pages, reporting
/// progress through `report` (at most every second, and once at the end).
///
/// # Errors
/// A usage error (exit 2) for a store with one layout;
/// [`TenantCommandError::Skipped`] when organizations were busy; the
/// store's failures.
pub async fn move_all(
    settings: &Settings,
    to: TenantLayout,
    mut report: impl FnMut(&MoveAllProgress),
) -> Result<MoveAllProgress, TenantCommandError> {
    ensure_applicable(settings)?;
    let store = open(settings).await?;
    let mut last = Instant::now();
    let done = tenant_moves::move_all_organizations(store.as_ref(), to, |progress| {
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            report(progress);
        }
    })
    .await
    .map_err(|error| command_error(error, "(all)"))?;
    report(&done);
    if done.skipped > 0 {
        return Err(TenantCommandError::Skipped(done.skipped));
    }
    Ok(done)
}

/// One line of progress of `--all`, e.g. `moved 3/120 organizations (4,000
/// documents); 5 already shared, 0 skipped`.
pub fn progress_line(progress: &MoveAllProgress, to: TenantLayout) -> String {
    format!(
        "moved {}/{} organizations ({} documents); {} already {}, {} skipped",
        Thousands(progress.moved),
        Thousands(progress.total),
        Thousands(progress.documents),
        Thousands(progress.already),
        layout_name(to),
        Thousands(progress.skipped)
    )
}

/// The outcome of a single move, for humans.
pub fn outcome_line(moved: &TenantMove, to: TenantLayout) -> String {
    let organization = &moved.organization;
    if moved.moved {
        format!(
            "moved organization {} ({}) to the {} layout: {} documents now in {}",
            organization.name.as_str(),
            organization.id,
            to.as_str(),
            Thousands(moved.documents),
            organization.location.physical_collection()
        )
    } else {
        format!(
            "organization {} ({}) is already in the {} layout; nothing moved",
            organization.name.as_str(),
            organization.id,
            to.as_str()
        )
    }
}

fn layout_name(layout: TenantLayout) -> &'static str {
    match layout {
        TenantLayout::Collection => "in a collection of their own",
        TenantLayout::Shared => "shared",
    }
}

/// The embedded store has one layout: said before the store is opened, so
/// also while the service holds it, and before any organization is looked
/// up.
fn ensure_applicable(settings: &Settings) -> Result<(), TenantCommandError> {
    match settings.store.kind {
        StoreKind::Embedded => Err(command_error(
            MoveTenantError::NotApplicable(orgsvc_sqlite::ONE_LAYOUT.to_owned()),
            "(any)",
        )),
        StoreKind::Mongodb => Ok(()),
    }
}

enum Target {
    Id(OrganizationId),
    Name(OrganizationName),
}

fn parse_target(raw: &str) -> Result<Target, StartupError> {
    if let Ok(id) = raw.parse::<OrganizationId>() {
        return Ok(Target::Id(id));
    }
    OrganizationName::parse(raw)
        .map(Target::Name)
        .map_err(|error| {
            StartupError::Usage(format!(
                "{raw:?} is neither an organization name nor an id: {error}"
            ))
        })
}

/// The command's error for a move's `error` about `organization`.
fn command_error(error: MoveTenantError, organization: &str) -> TenantCommandError {
    match error {
        MoveTenantError::NotFound => TenantCommandError::Startup(StartupError::Usage(format!(
            "no organization is named {organization} (or has that id)"
        ))),
        MoveTenantError::NotApplicable(why) => {
            TenantCommandError::Startup(StartupError::Usage(format!("not applicable: {why}")))
        }
        MoveTenantError::Busy => TenantCommandError::Busy(organization.to_owned()),
        MoveTenantError::Store(error) => TenantCommandError::Failed(error),
    }
}

/// A count with thousands separators: `4,000`.
struct Thousands(u64);

impl fmt::Display for Thousands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (4_000, "4,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(Thousands(n).to_string(), shown);
        }
    }

    #[test]
    fn progress_reads_as_moved_of_total_with_documents() {
        let progress = MoveAllProgress {
            total: 120,
            seen: 8,
            moved: 3,
            already: 5,
            skipped: 0,
            documents: 4_000,
        };
        assert_eq!(
            progress_line(&progress, TenantLayout::Shared),
            "moved 3/120 organizations (4,000 documents); 5 already shared, 0 skipped"
        );
    }

    #[test]
    fn an_organization_is_named_or_given_by_id() {
        let id = OrganizationId::new();
        assert!(matches!(parse_target(&id.to_string()), Ok(Target::Id(parsed)) if parsed == id));
        assert!(matches!(parse_target("Acme Corp"), Ok(Target::Name(_))));
        let err = parse_target("").err().map(|e| e.exit_code());
        assert_eq!(err, Some(2));
    }

    #[test]
    fn unknown_organizations_and_single_layout_stores_are_usage_errors() {
        assert_eq!(
            command_error(MoveTenantError::NotFound, "acme").exit_code(),
            2
        );
        let not_applicable =
            command_error(MoveTenantError::NotApplicable("one table".into()), "acme");
        assert_eq!(not_applicable.exit_code(), 2);
        assert_eq!(not_applicable.to_string(), "not applicable: one table");
        assert_eq!(command_error(MoveTenantError::Busy, "acme").exit_code(), 1);
    }
}
