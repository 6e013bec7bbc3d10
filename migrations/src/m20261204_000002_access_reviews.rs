//! Access reviews: campaigns (a definition, run as numbered instances), the review items an
//! instance snapshots from the grants in scope (who, what, how held, the recommendation and
//! its reason, the decision and its evidence, the revocation's change and outcome), and each
//! item's reviewers, resolved when the instance starts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    Name,
    Description,
    ConnectorId,
    Definition,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    /// When the next instance of a recurring campaign starts.
    NextStartAt,
}

#[derive(DeriveIden)]
enum CampaignInstances {
    Table,
    Id,
    CampaignId,
    Number,
    State,
    StartedBy,
    StartedAt,
    DueAt,
    ClosedBy,
    ClosedAt,
    /// Sign-in activity was synced when the instance started (recommendations used it).
    SignInsKnown,
    /// Reviewers were mailed that it started.
    AnnouncedAt,
    MidpointRemindedAt,
    FinalRemindedAt,
    /// Owners were mailed the summary after it closed.
    SummarizedAt,
}

#[derive(DeriveIden)]
enum ReviewItems {
    Table,
    Id,
    InstanceId,
    PrincipalId,
    PrincipalObject,
    PrincipalName,
    PrincipalUpn,
    PrincipalKind,
    ResourceId,
    ResourceObject,
    ResourceName,
    ResourceKind,
    EntitlementKey,
    EntitlementName,
    GrantId,
    /// `direct`, `jit` or `inherited`.
    HeldAs,
    ViaName,
    /// The change a revoke makes (JSON), or why none can (`revoke_blocked`).
    RevokeAction,
    RevokeBlocked,
    Recommendation,
    RecommendationReason,
    Decision,
    Justification,
    DecidedBy,
    DecidedById,
    DecidedAt,
    DecidedRecommendation,
    DecisionAuditSeq,
    ChangeId,
    ApplyResult,
    ApplyError,
}

#[derive(DeriveIden)]
enum ReviewAssignments {
    Table,
    ItemId,
    InstanceId,
    ReviewerObject,
    ReviewerName,
    ReviewerEmail,
    /// The item's decision, kept beside each of its reviewers: an inbox's counts and pages
    /// are read from this index alone.
    Decision,
}

#[derive(DeriveIden)]
enum ReviewComments {
    Table,
    Id,
    ItemId,
    Author,
    AuthorId,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Connectors {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(big_pk_auto(Campaigns::Id))
                    .col(string(Campaigns::Name))
                    .col(text(Campaigns::Description))
                    .col(big_integer(Campaigns::ConnectorId))
                    .col(text(Campaigns::Definition))
                    .col(string(Campaigns::CreatedBy))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .col(timestamp_with_time_zone(Campaigns::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::NextStartAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Campaigns::Table, Campaigns::ConnectorId)
                            .to(Connectors::Table, Connectors::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignInstances::Table)
                    .col(big_pk_auto(CampaignInstances::Id))
                    .col(big_integer(CampaignInstances::CampaignId))
                    .col(integer(CampaignInstances::Number))
                    .col(string(CampaignInstances::State))
                    .col(string(CampaignInstances::StartedBy))
                    .col(timestamp_with_time_zone(CampaignInstances::StartedAt))
                    .col(timestamp_with_time_zone(CampaignInstances::DueAt))
                    .col(string_null(CampaignInstances::ClosedBy))
                    .col(timestamp_with_time_zone_null(CampaignInstances::ClosedAt))
                    .col(boolean(CampaignInstances::SignInsKnown))
                    .col(timestamp_with_time_zone_null(CampaignInstances::AnnouncedAt))
                    .col(timestamp_with_time_zone_null(CampaignInstances::MidpointRemindedAt))
                    .col(timestamp_with_time_zone_null(CampaignInstances::FinalRemindedAt))
                    .col(timestamp_with_time_zone_null(CampaignInstances::SummarizedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CampaignInstances::Table, CampaignInstances::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_campaign_instances_number")
                    .table(CampaignInstances::Table)
                    .col(CampaignInstances::CampaignId)
                    .col(CampaignInstances::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReviewItems::Table)
                    .col(big_pk_auto(ReviewItems::Id))
                    .col(big_integer(ReviewItems::InstanceId))
                    .col(big_integer(ReviewItems::PrincipalId))
                    .col(string(ReviewItems::PrincipalObject))
                    .col(string(ReviewItems::PrincipalName))
                    .col(string_null(ReviewItems::PrincipalUpn))
                    .col(string(ReviewItems::PrincipalKind))
                    .col(big_integer(ReviewItems::ResourceId))
                    .col(string(ReviewItems::ResourceObject))
                    .col(string(ReviewItems::ResourceName))
                    .col(string(ReviewItems::ResourceKind))
                    .col(string(ReviewItems::EntitlementKey))
                    .col(string(ReviewItems::EntitlementName))
                    .col(big_integer_null(ReviewItems::GrantId))
                    .col(string(ReviewItems::HeldAs))
                    .col(string_null(ReviewItems::ViaName))
                    .col(text_null(ReviewItems::RevokeAction))
                    .col(text_null(ReviewItems::RevokeBlocked))
                    .col(string(ReviewItems::Recommendation))
                    .col(text(ReviewItems::RecommendationReason))
                    .col(string(ReviewItems::Decision))
                    .col(text_null(ReviewItems::Justification))
                    .col(string_null(ReviewItems::DecidedBy))
                    .col(string_null(ReviewItems::DecidedById))
                    .col(timestamp_with_time_zone_null(ReviewItems::DecidedAt))
                    .col(string_null(ReviewItems::DecidedRecommendation))
                    .col(big_integer_null(ReviewItems::DecisionAuditSeq))
                    .col(big_integer_null(ReviewItems::ChangeId))
                    .col(string_null(ReviewItems::ApplyResult))
                    .col(text_null(ReviewItems::ApplyError))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewItems::Table, ReviewItems::InstanceId)
                            .to(CampaignInstances::Table, CampaignInstances::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Progress and closing go by decision; reports and peers by principal.
        for (name, cols) in [
            ("ix_review_items_decision", [ReviewItems::InstanceId, ReviewItems::Decision]),
            ("ix_review_items_principal", [ReviewItems::InstanceId, ReviewItems::PrincipalId]),
        ] {
            let mut index = Index::create();
            index.name(name).table(ReviewItems::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(ReviewAssignments::Table)
                    .col(big_integer(ReviewAssignments::ItemId))
                    .col(big_integer(ReviewAssignments::InstanceId))
                    .col(string(ReviewAssignments::ReviewerObject))
                    .col(string(ReviewAssignments::ReviewerName))
                    .col(string_null(ReviewAssignments::ReviewerEmail))
                    .col(string(ReviewAssignments::Decision).default("pending"))
                    .primary_key(Index::create().col(ReviewAssignments::ItemId).col(ReviewAssignments::ReviewerObject))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewAssignments::Table, ReviewAssignments::ItemId)
                            .to(ReviewItems::Table, ReviewItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A reviewer's inbox: their items across campaigns, by decision, in snapshot order.
        manager
            .create_index(
                Index::create()
                    .name("ix_review_assignments_reviewer")
                    .table(ReviewAssignments::Table)
                    .col(ReviewAssignments::ReviewerObject)
                    .col(ReviewAssignments::Decision)
                    .col(ReviewAssignments::InstanceId)
                    .col(ReviewAssignments::ItemId)
                    .to_owned(),
            )
            .await?;
        // A campaign's progress per reviewer.
        manager
            .create_index(
                Index::create()
                    .name("ix_review_assignments_instance")
                    .table(ReviewAssignments::Table)
                    .col(ReviewAssignments::InstanceId)
                    .col(ReviewAssignments::ReviewerObject)
                    .to_owned(),
            )
            .await?;
        // What reviewers and owners say about an item.
        manager
            .create_table(
                Table::create()
                    .table(ReviewComments::Table)
                    .col(big_pk_auto(ReviewComments::Id))
                    .col(big_integer(ReviewComments::ItemId))
                    .col(string(ReviewComments::Author))
                    .col(string_null(ReviewComments::AuthorId))
                    .col(text(ReviewComments::Body))
                    .col(timestamp_with_time_zone(ReviewComments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewComments::Table, ReviewComments::ItemId)
                            .to(ReviewItems::Table, ReviewItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_review_comments_item")
                    .table(ReviewComments::Table)
                    .col(ReviewComments::ItemId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReviewComments::Table.into_iden(),
            ReviewAssignments::Table.into_iden(),
            ReviewItems::Table.into_iden(),
            CampaignInstances::Table.into_iden(),
            Campaigns::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
