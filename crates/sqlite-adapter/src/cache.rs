//! An in-process cache of the lookups every request makes: organizations by
//! name and by id, admins by id.
//!
//! A hit answers on the calling task, without a trip to a connection's
//! thread and back (which cost more than the SQLite query itself). A miss
//! reads SQLite and remembers the answer, found or not.
//!
//! Coherence. The store's process is the only writer of the file (the store
//! holds an exclusive lock on it, see `connection.rs`), and every write goes
//! through the writer connection, whose SQLite update hook reports each row
//! it inserts, updates or deletes, foreign-key cascades included. When a
//! write call has touched a row of a [`WATCHED_TABLES`] table, the writer
//! calls [`Cache::invalidate`] as soon as the call returns (after its
//! commit), before the caller sees the result: the whole cache is dropped and
//! its generation moves on. A miss takes a [`Ticket`] (the generation)
//! *before* its SQLite read starts, and its answer is only remembered if the
//! generation is still the same, so a read that began before a write
//! committed can never put its stale answer back after the invalidation.
//! So once a write call has returned, no lookup answers with what it changed
//! as it was before. Writes that touch only tenant documents, sessions or
//! the audit log leave the cache alone.
//!
//! A lookup may only be cached if it reads nothing but the tables in
//! [`WATCHED_TABLES`]: add a table there before caching a lookup that reads
//! it. The update hook does not see WITHOUT ROWID tables nor `DELETE`
//! without `WHERE` (SQLite's truncate optimization), so neither must be used
//! on a watched table, except by a migration: applying a migration records
//! it in `_migrations`, which is watched, and so drops the whole cache.
//!
//! Size: at most [`ORGANIZATIONS`] organizations by id, as many by name, and
//! [`ADMINS`] admins, each map evicting its least recently used half (see
//! [`Bounded`]): a few MiB at most, whatever the number of organizations.
//! Names that do not exist are remembered too: a client asking for many of
//! them can push other entries out (the lookups then read SQLite again), not
//! grow the cache.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use orgsvc_domain::{Admin, AdminId, Organization, OrganizationId};

/// The tables the cached lookups read: a write touching a row of one of them
/// drops the cache. `_migrations` stands for any schema change.
pub(crate) const WATCHED_TABLES: [&str; 3] = ["organizations", "admins", "_migrations"];

/// Organizations remembered by id (and as many by name): with up to 4,096
/// entries each, about 2 MiB when full.
const ORGANIZATIONS: usize = 4096;

/// Admins remembered by id: about 1 MiB when full.
const ADMINS: usize = 4096;

/// Whether a change to a row of `table` must drop the cache.
pub(crate) fn watches(table: &str) -> bool {
    WATCHED_TABLES.contains(&table)
}

/// The cached lookups of one store (see the module docs).
#[derive(Debug)]
pub(crate) struct Cache {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Moves on at every invalidation.
    generation: u64,
    organizations_by_id: Bounded<OrganizationId, Option<Arc<Organization>>>,
    /// Keyed by canonical name.
    organizations_by_name: Bounded<String, Option<Arc<Organization>>>,
    admins: Bounded<AdminId, Option<Arc<Admin>>>,
}

/// What a miss must show to have its answer remembered: the generation of
/// the cache before the read started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// A cache lookup's outcome.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    /// The cache knows the answer (which may be "there is none").
    Hit(Option<T>),
    /// Read it, then hand the answer back with this ticket.
    Miss(Ticket),
}

impl Default for Cache {
    fn default() -> Self {
        Self::with_capacity(ORGANIZATIONS, ADMINS)
    }
}

impl Cache {
    /// An empty cache holding at most `organizations` organizations (by id,
    /// and as many by name) and `admins` admins.
    pub(crate) fn with_capacity(organizations: usize, admins: usize) -> Self {
        Self {
            state: Mutex::new(State {
                generation: 0,
                organizations_by_id: Bounded::new(organizations),
                organizations_by_name: Bounded::new(organizations),
                admins: Bounded::new(admins),
            }),
        }
    }

    /// The organization with this id, if cached.
    pub(crate) fn organization_by_id(&self, id: OrganizationId) -> Lookup<Organization> {
        let mut state = self.state();
        let found = state.organizations_by_id.get(&id);
        let generation = state.generation;
        drop(state); // copied out unlocked
        lookup(found, generation)
    }

    /// The organization with this canonical name, if cached.
    pub(crate) fn organization_by_name(&self, canonical: &str) -> Lookup<Organization> {
        let mut state = self.state();
        let found = state.organizations_by_name.get(canonical);
        let generation = state.generation;
        drop(state); // copied out unlocked
        lookup(found, generation)
    }

    /// The admin with this id, if cached.
    pub(crate) fn admin_by_id(&self, id: AdminId) -> Lookup<Admin> {
        let mut state = self.state();
        let found = state.admins.get(&id);
        let generation = state.generation;
        drop(state); // copied out unlocked
        lookup(found, generation)
    }

    /// Remembers what the read of organization `id` found, unless the cache
    /// was invalidated since `ticket` was taken.
    pub(crate) fn remember_organization_by_id(
        &self,
        ticket: Ticket,
        id: OrganizationId,
        found: Option<&Organization>,
    ) {
        let found = found.map(|organization| Arc::new(organization.clone()));
        let mut state = self.state();
        if state.generation != ticket.0 {
            return;
        }
        match found {
            Some(organization) => state.remember_organization(organization),
            None => state.organizations_by_id.insert(id, None),
        }
    }

    /// Remembers what the read of the organization named `canonical` found,
    /// unless the cache was invalidated since `ticket` was taken.
    pub(crate) fn remember_organization_by_name(
        &self,
        ticket: Ticket,
        canonical: &str,
        found: Option<&Organization>,
    ) {
        let found = found.map(|organization| Arc::new(organization.clone()));
        let mut state = self.state();
        if state.generation != ticket.0 {
            return;
        }
        match found {
            Some(organization) => state.remember_organization(organization),
            None => state
                .organizations_by_name
                .insert(canonical.to_owned(), None),
        }
    }

    /// Remembers what the read of admin `id` found, unless the cache was
    /// invalidated since `ticket` was taken.
    pub(crate) fn remember_admin(&self, ticket: Ticket, id: AdminId, found: Option<&Admin>) {
        let found = found.map(|admin| Arc::new(admin.clone()));
        let mut state = self.state();
        if state.generation == ticket.0 {
            state.admins.insert(id, found);
        }
    }

    /// Forgets everything and refuses every answer read before now.
    pub(crate) fn invalidate(&self) {
        self.state().invalidate();
    }

    /// The state. A panic while it was locked (none is expected: nothing in
    /// here panics) may have left it half-changed, so it is then dropped.
    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => {
                let mut state = poisoned.into_inner();
                state.invalidate();
                self.state.clear_poison();
                state
            }
        }
    }
}

impl State {
    fn remember_organization(&mut self, organization: Arc<Organization>) {
        self.organizations_by_name.insert(
            organization.name.canonical().to_owned(),
            Some(Arc::clone(&organization)),
        );
        self.organizations_by_id
            .insert(organization.id, Some(organization));
    }

    fn invalidate(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.organizations_by_id.clear();
        self.organizations_by_name.clear();
        self.admins.clear();
    }
}

/// A hit, or a miss whose ticket is `generation`, the generation the lookup
/// saw.
fn lookup<T: Clone>(found: Option<Option<Arc<T>>>, generation: u64) -> Lookup<T> {
    match found {
        Some(found) => Lookup::Hit(found.map(|value| T::clone(&value))),
        None => Lookup::Miss(Ticket(generation)),
    }
}

/// A map of at most `2 * half` entries that forgets the least recently used
/// ones in bulk: new entries go to `recent`; when it is full it becomes
/// `older` (the previous `older` is dropped), and an entry found in `older`
/// moves back to `recent`. Every operation is O(1) (amortized).
#[derive(Debug)]
struct Bounded<K, V> {
    recent: HashMap<K, V>,
    older: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            recent: HashMap::new(),
            older: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.recent.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.older.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.recent.len() >= self.half && !self.recent.contains_key(&key) {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(key, value);
    }

    fn clear(&mut self) {
        self.recent = HashMap::new();
        self.older = HashMap::new();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.recent.len() + self.older.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use orgsvc_domain::{
        AdminEmail, AdminRole, CollectionName, OrganizationName, StoreError, TenantLocation,
    };

    use super::*;
    use crate::connection::Connections;
    use crate::organizations;

    fn organization(name: &str) -> Organization {
        let name = OrganizationName::parse(name).unwrap();
        Organization {
            id: OrganizationId::new(),
            location: TenantLocation {
                database: "main".to_owned(),
                collection: CollectionName::parse(name.collection_name().as_str()).unwrap(),
                layout: orgsvc_domain::TenantLayout::Collection,
            },
            name,
            admin_id: AdminId::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            state: Default::default(),
        }
    }

    fn miss<T: std::fmt::Debug>(lookup: Lookup<T>) -> Ticket {
        match lookup {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(found) => panic!("expected a miss, got {found:?}"),
        }
    }

    fn hit<T: std::fmt::Debug>(lookup: Lookup<T>) -> Option<T> {
        match lookup {
            Lookup::Hit(found) => found,
            Lookup::Miss(_) => panic!("expected a hit"),
        }
    }

    #[test]
    fn a_found_organization_is_remembered_by_id_and_by_name() {
        let cache = Cache::default();
        let acme = organization("Acme Corp");
        let ticket = miss(cache.organization_by_name("acme_corp"));

        cache.remember_organization_by_name(ticket, "acme_corp", Some(&acme));

        assert_eq!(
            hit(cache.organization_by_name("acme_corp")),
            Some(acme.clone())
        );
        assert_eq!(hit(cache.organization_by_id(acme.id)), Some(acme));
    }

    #[test]
    fn absence_is_remembered_too() {
        let cache = Cache::default();
        let id = OrganizationId::new();
        let ticket = miss(cache.organization_by_id(id));
        cache.remember_organization_by_id(ticket, id, None);
        let ticket = miss(cache.organization_by_name("nobody"));
        cache.remember_organization_by_name(ticket, "nobody", None);

        assert_eq!(hit(cache.organization_by_id(id)), None);
        assert_eq!(hit(cache.organization_by_name("nobody")), None);
    }

    #[test]
    fn invalidation_forgets_everything() {
        let cache = Cache::default();
        let acme = organization("Acme");
        let ticket = miss(cache.organization_by_id(acme.id));
        cache.remember_organization_by_id(ticket, acme.id, Some(&acme));
        let admin = Admin {
            id: acme.admin_id,
            organization_id: acme.id,
            email: AdminEmail::parse("owner@acme.example").unwrap(),
            role: AdminRole::Owner,
            token_version: 0,
            email_verified: false,
            created_at: acme.created_at,
            updated_at: acme.created_at,
        };
        let ticket = miss(cache.admin_by_id(admin.id));
        cache.remember_admin(ticket, admin.id, Some(&admin));
        assert_eq!(hit(cache.admin_by_id(admin.id)), Some(admin.clone()));

        cache.invalidate();

        miss(cache.organization_by_id(acme.id));
        miss(cache.organization_by_name("acme"));
        miss(cache.admin_by_id(admin.id));
    }

    #[test]
    fn an_answer_read_before_an_invalidation_is_not_remembered() {
        let cache = Cache::default();
        let acme = organization("Acme");
        // A read starts (takes its ticket), a write commits and invalidates,
        // then the read hands back what it saw before the write.
        let ticket = miss(cache.organization_by_id(acme.id));
        cache.invalidate();
        cache.remember_organization_by_id(ticket, acme.id, Some(&acme));
        cache.remember_organization_by_name(ticket, "acme", Some(&acme));
        cache.remember_admin(ticket, acme.admin_id, None);

        miss(cache.organization_by_id(acme.id));
        miss(cache.organization_by_name("acme"));
        miss(cache.admin_by_id(acme.admin_id));
    }

    /// The race the tickets exist for, step by step on a real store: a read
    /// takes its snapshot, a rename commits (and invalidates), then the read
    /// hands back the old organization.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_began_before_a_rename_committed_does_not_cache_the_old_name() {
        use std::sync::mpsc;

        let dir = tempfile::tempdir().unwrap();
        let connections = Connections::open(
            &dir.path().join("orgsvc.db"),
            crate::connection::default_readers(),
            |_| Ok(Vec::new()),
        )
        .await
        .unwrap();
        connections
            .write(|c| crate::migrations::apply(c, crate::migrations::MIGRATIONS))
            .await
            .unwrap();
        let new = orgsvc_domain::testing::new_org("Acme", "owner@acme.example");
        let created = connections
            .write(move |c| organizations::create(c, &new))
            .await
            .unwrap();
        let acme = OrganizationName::parse("Acme").unwrap();

        let ticket = miss(connections.cache().organization_by_name("acme"));
        let (snapshot_taken, on_snapshot) = mpsc::channel();
        let (renamed, on_renamed) = mpsc::channel::<()>();
        let reading = {
            let connections = connections.clone();
            let acme = acme.clone();
            tokio::spawn(async move {
                connections
                    .read(move |c| {
                        let snapshot = crate::connection::begin_read(c, "a slow read")?;
                        let found = organizations::by_name(&snapshot, &acme)?;
                        snapshot_taken.send(()).unwrap();
                        on_renamed.recv().unwrap();
                        Ok::<_, StoreError>(found)
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || on_snapshot.recv().unwrap())
            .await
            .unwrap();
        let labs = OrganizationName::parse("Acme Labs").unwrap();
        connections
            .write(move |c| organizations::rename(c, created.id, None, &labs))
            .await
            .unwrap();
        renamed.send(()).unwrap();
        let stale = reading.await.unwrap().unwrap();
        assert_eq!(stale.as_ref().map(|o| o.name.as_str()), Some("Acme"));

        connections
            .cache()
            .remember_organization_by_name(ticket, "acme", stale.as_ref());

        miss(connections.cache().organization_by_name("acme"));
        assert_eq!(
            crate::lookups::organization_by_name(&connections, &acme)
                .await
                .unwrap(),
            None
        );
    }

    #[test]
    fn only_the_master_tables_and_migrations_are_watched() {
        for table in ["organizations", "admins", "_migrations"] {
            assert!(watches(table), "{table}");
        }
        for table in ["org_acme", "organizations_x", "sqlite_schema"] {
            assert!(!watches(table), "{table}");
        }
    }

    #[test]
    fn bounded_keeps_at_most_its_capacity_and_the_recently_used_entries() {
        let mut map = Bounded::new(4);
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("c", 3);
        // "a" is used again, "b" is not: the next rotation forgets "b" only.
        assert_eq!(map.get("a"), Some(1));
        map.insert("d", 4);
        assert_eq!(map.get("b"), None);
        assert_eq!(map.get("a"), Some(1));
        assert_eq!(map.get("c"), Some(3));
        assert_eq!(map.get("d"), Some(4));
        let mut numbers = Bounded::new(4);
        for key in 0..1000 {
            numbers.insert(key, key);
            assert!(numbers.len() <= 4, "{}", numbers.len());
            assert_eq!(numbers.get(&key), Some(key));
        }
    }

    #[test]
    fn a_full_cache_stays_bounded() {
        let cache = Cache::with_capacity(8, 8);
        for _ in 0..100 {
            let acme = organization("Acme");
            let ticket = miss(cache.organization_by_id(acme.id));
            cache.remember_organization_by_id(ticket, acme.id, Some(&acme));
        }
        let state = cache.state();
        assert!(state.organizations_by_id.len() <= 8);
        assert!(state.organizations_by_name.len() <= 8);
    }
}
