//! Just-in-time access: request policies, requests, who may approve each and what they said.
//!
//! `access_policies` keeps one policy per entitlement (`scope_key` = `entitlement:<id>`) or
//! per kind of resource in a connector (`kind:<group|application|directory_role>`), as JSON
//! (`attest_domain::access::AccessPolicy`). A request copies the policy it was asked under
//! (`policy`), so a later change of policy does not change what was agreed. Its approvers are
//! resolved when it is asked (`access_request_approvers`, per stage) and their answers kept in
//! `access_request_votes`. `grant_change_id` and `revoke_change_id` are the changes that gave
//! and took away the access; the mail columns mark what was sent, so a restart sends nothing twice.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AccessPolicies {
    Table,
    Id,
    ConnectorId,
    ScopeKey,
    EntitlementId,
    ResourceKind,
    Policy,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccessRequests {
    Table,
    Id,
    ConnectorId,
    EntitlementId,
    PrincipalId,
    RequesterObject,
    RequesterName,
    RequesterEmail,
    AskedBy,
    DurationMinutes,
    Justification,
    Ticket,
    State,
    Stage,
    Stages,
    Quorum,
    Policy,
    StartsAt,
    ApprovalDueAt,
    CreatedAt,
    UpdatedAt,
    DecidedAt,
    ActivatedAt,
    ExpiresAt,
    EndedAt,
    EndedBy,
    EndReason,
    GrantChangeId,
    RevokeChangeId,
    ExtendsId,
    ApproversMailedStage,
    DecisionMailedAt,
    ExpiryNoticeAt,
}

#[derive(DeriveIden)]
enum AccessRequestApprovers {
    Table,
    RequestId,
    Stage,
    ApproverObject,
    ApproverName,
    ApproverEmail,
}

#[derive(DeriveIden)]
enum AccessRequestVotes {
    Table,
    RequestId,
    Stage,
    ApproverObject,
    ApproverName,
    Approve,
    Reason,
    DecidedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessPolicies::Table)
                    .col(big_pk_auto(AccessPolicies::Id))
                    .col(big_integer(AccessPolicies::ConnectorId))
                    .col(string(AccessPolicies::ScopeKey))
                    .col(big_integer_null(AccessPolicies::EntitlementId))
                    .col(string_null(AccessPolicies::ResourceKind))
                    .col(text(AccessPolicies::Policy))
                    .col(string(AccessPolicies::UpdatedBy))
                    .col(timestamp_with_time_zone(AccessPolicies::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_access_policies_scope")
                    .table(AccessPolicies::Table)
                    .col(AccessPolicies::ConnectorId)
                    .col(AccessPolicies::ScopeKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessRequests::Table)
                    .col(big_pk_auto(AccessRequests::Id))
                    .col(big_integer(AccessRequests::ConnectorId))
                    .col(big_integer(AccessRequests::EntitlementId))
                    .col(big_integer(AccessRequests::PrincipalId))
                    .col(string(AccessRequests::RequesterObject))
                    .col(string(AccessRequests::RequesterName))
                    .col(string_null(AccessRequests::RequesterEmail))
                    .col(string(AccessRequests::AskedBy))
                    .col(integer_null(AccessRequests::DurationMinutes))
                    .col(text(AccessRequests::Justification))
                    .col(string_null(AccessRequests::Ticket))
                    .col(string(AccessRequests::State))
                    .col(integer(AccessRequests::Stage))
                    .col(integer(AccessRequests::Stages))
                    .col(integer(AccessRequests::Quorum))
                    .col(text(AccessRequests::Policy))
                    .col(timestamp_with_time_zone_null(AccessRequests::StartsAt))
                    .col(timestamp_with_time_zone(AccessRequests::ApprovalDueAt))
                    .col(timestamp_with_time_zone(AccessRequests::CreatedAt))
                    .col(timestamp_with_time_zone(AccessRequests::UpdatedAt))
                    .col(timestamp_with_time_zone_null(AccessRequests::DecidedAt))
                    .col(timestamp_with_time_zone_null(AccessRequests::ActivatedAt))
                    .col(timestamp_with_time_zone_null(AccessRequests::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AccessRequests::EndedAt))
                    .col(string_null(AccessRequests::EndedBy))
                    .col(text_null(AccessRequests::EndReason))
                    .col(big_integer_null(AccessRequests::GrantChangeId))
                    .col(big_integer_null(AccessRequests::RevokeChangeId))
                    .col(big_integer_null(AccessRequests::ExtendsId))
                    .col(integer(AccessRequests::ApproversMailedStage).default(0))
                    .col(timestamp_with_time_zone_null(AccessRequests::DecisionMailedAt))
                    .col(timestamp_with_time_zone_null(AccessRequests::ExpiryNoticeAt))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ix_access_requests_state", vec![AccessRequests::State, AccessRequests::ExpiresAt]),
            ("ix_access_requests_requester", vec![AccessRequests::RequesterObject, AccessRequests::Id]),
            (
                "ix_access_requests_holder",
                vec![AccessRequests::ConnectorId, AccessRequests::EntitlementId, AccessRequests::PrincipalId],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(AccessRequests::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(AccessRequestApprovers::Table)
                    .col(big_integer(AccessRequestApprovers::RequestId))
                    .col(integer(AccessRequestApprovers::Stage))
                    .col(string(AccessRequestApprovers::ApproverObject))
                    .col(string(AccessRequestApprovers::ApproverName))
                    .col(string_null(AccessRequestApprovers::ApproverEmail))
                    .primary_key(
                        Index::create()
                            .col(AccessRequestApprovers::RequestId)
                            .col(AccessRequestApprovers::Stage)
                            .col(AccessRequestApprovers::ApproverObject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AccessRequestApprovers::Table, AccessRequestApprovers::RequestId)
                            .to(AccessRequests::Table, AccessRequests::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_access_request_approvers_approver")
                    .table(AccessRequestApprovers::Table)
                    .col(AccessRequestApprovers::ApproverObject)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessRequestVotes::Table)
                    .col(big_integer(AccessRequestVotes::RequestId))
                    .col(integer(AccessRequestVotes::Stage))
                    .col(string(AccessRequestVotes::ApproverObject))
                    .col(string(AccessRequestVotes::ApproverName))
                    .col(boolean(AccessRequestVotes::Approve))
                    .col(text_null(AccessRequestVotes::Reason))
                    .col(timestamp_with_time_zone(AccessRequestVotes::DecidedAt))
                    .primary_key(
                        Index::create()
                            .col(AccessRequestVotes::RequestId)
                            .col(AccessRequestVotes::Stage)
                            .col(AccessRequestVotes::ApproverObject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AccessRequestVotes::Table, AccessRequestVotes::RequestId)
                            .to(AccessRequests::Table, AccessRequests::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["access_request_votes", "access_request_approvers", "access_requests", "access_policies"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
