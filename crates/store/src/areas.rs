//! The store's areas. `Store` is one handle on the database; its methods are grouped by what
//! they keep, each group a view of the same handle: `store.changes().list_changes(…)`,
//! `store.outbox().enqueue_mail(…)`. A new feature's tables get an area of their own here
//! instead of more methods on `Store`. Connecting, migrating and the schema's status stay on
//! `Store` itself. An area is `Copy` and its methods take it by value, so a future they return
//! borrows the store, not the area.

use std::ops::Deref;

use crate::Store;

macro_rules! areas {
    ($($(#[$doc:meta])* $accessor:ident => $area:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug)]
            pub struct $area<'a>(&'a Store);

            impl Deref for $area<'_> {
                type Target = Store;
                fn deref(&self) -> &Store {
                    self.0
                }
            }
        )*

        impl Store {
            $(
                $(#[$doc])*
                pub fn $accessor(&self) -> $area<'_> {
                    $area(self)
                }
            )*
        }
    };
}

areas! {
    /// Users, groups, service principals and managed identities as synced.
    principals => Principals;
    /// Groups, applications and directory roles, and the entitlements they offer.
    resources => Resources;
    /// Who holds what: direct grants as synced, inherited ones derived, and the access commands
    /// (grant, revoke) resolved against them.
    grants => Grants;
    /// The directory as people read it: searches, a principal's access and why, a resource's
    /// holders, what a revoke would change.
    directory => Directory;
    /// Connectors (tenants), their owners and credentials.
    connectors => Connectors;
    /// Sync runs, "Sync now" requests and each connector's delta state.
    syncs => Syncs;
    /// The provisioning queue: every change Attest makes in a directory.
    changes => Changes;
    /// The mail outbox.
    outbox => Outbox;
    /// Attest's own users, their sessions and sign-ins.
    web => Web;
    /// The audit log and its hash chain.
    audit => Audit;
    /// What each sync saw change (joiners, movers, leavers).
    lifecycle => Lifecycle;
    /// Leases background jobs hold so one replica runs each.
    leases => Leases;
    /// Access review campaigns, their instances, items and reviewers.
    reviews => Reviews;
    /// Just-in-time access: request policies, requests, their approvers and votes.
    requests => Requests;
    /// Connecting a tenant: connector status, owners' invitations, the consent round trip.
    setup => Setup;
    /// Accounts pushed by Entra over SCIM: tokens, users, groups and their members.
    scim => Scim;
}
