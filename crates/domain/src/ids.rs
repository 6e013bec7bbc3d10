//! Id newtypes: a `PrincipalId` can never be passed where a `GrantId` is expected.
//!
//! Ids are the database's surrogate keys (64-bit integers): compact in indexes and joins, which
//! matters at millions of grants. External (Graph) object ids are kept separately as strings.

macro_rules! id_newtype {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw database key.
            pub fn get(self) -> i64 { self.0 }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> { s.parse().map($name) }
        }
    )+};
}

id_newtype! {
    /// A connected directory (one Entra tenant).
    ConnectorId;
    /// Someone or something that can hold access.
    PrincipalId;
    /// Something access is to: a group, an application, a directory role.
    ResourceId;
    /// A grantable right on a resource.
    EntitlementId;
    /// A principal holding an entitlement.
    GrantId;
    /// One run of a connector's sync.
    SyncRunId;
    /// One appended lifecycle event.
    LifecycleEventId;
    /// One queued change to the directory.
    ChangeId;
    /// One mail in the outbox.
    MailId;
}
