//! Identifiers: UUIDv7, so they sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_v7_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing id, e.g. one read from storage or a token.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_v7_id!(
    /// An organization's immutable id: it survives renames.
    OrganizationId
);
uuid_v7_id!(
    /// An admin's immutable id.
    AdminId
);
uuid_v7_id!(
    /// A tenant document's id, assigned by the store at insertion.
    DocumentId
);
uuid_v7_id!(
    /// One login session: the chain of refresh tokens issued from one login
    /// by rotation.
    SessionFamilyId
);
uuid_v7_id!(
    /// An audit log entry's id; entries sort by it in time order.
    AuditEventId
);
uuid_v7_id!(
    /// An outbox message's id; messages sort by it in creation order.
    OutboxMessageId
);
uuid_v7_id!(
    /// An invitation's id; invitations sort by it in creation order.
    InvitationId
);
uuid_v7_id!(
    /// An operator API key's id; keys sort by it in creation order.
    OperatorKeyId
);
