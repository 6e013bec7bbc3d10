//! Multi-stage reviews, and a reviewer's counts kept rather than counted.
//!
//! An instance runs its stages one after the other (`stage` of `stages`, each with its own
//! start and deadline). Every stage's reviewers are resolved when the instance starts: the
//! first stage's become assignments at once, later stages' wait in `review_stage_reviewers`
//! until the stage before closes and lets an item through. What a closed stage decided about
//! an item, and who could decide it, is kept in `review_stage_decisions` (evidence, and what
//! later reviewers see). An item's `stage` is the last stage it reached.
//!
//! `review_inbox_counts` keeps each reviewer's pending, approved and revoked counts (and how
//! they are named) per instance, kept in step by the writes: an inbox and a campaign's
//! progress per reviewer read one row each instead of counting assignments. That makes
//! `ix_review_assignments_instance` unnecessary, and `ix_review_items_principal` was never
//! read: both go, two fewer random-order indexes to keep up while a million items are written.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CampaignInstances {
    Table,
    Stage,
    Stages,
    StageStartedAt,
    StageDueAt,
}

#[derive(DeriveIden)]
enum ReviewItems {
    Table,
    Id,
    InstanceId,
    PrincipalId,
    Stage,
}

#[derive(DeriveIden)]
enum ReviewAssignments {
    Table,
    InstanceId,
    ReviewerObject,
}

#[derive(DeriveIden)]
enum ReviewInboxCounts {
    Table,
    ReviewerObject,
    InstanceId,
    ReviewerName,
    ReviewerEmail,
    Pending,
    Approved,
    Revoked,
}

#[derive(DeriveIden)]
enum ReviewStageReviewers {
    Table,
    ItemId,
    InstanceId,
    Stage,
    ReviewerObject,
    ReviewerName,
    ReviewerEmail,
}

#[derive(DeriveIden)]
enum ReviewStageDecisions {
    Table,
    ItemId,
    InstanceId,
    Stage,
    Reviewers,
    Decision,
    Justification,
    DecidedBy,
    DecidedById,
    DecidedAt,
    DecidedRecommendation,
    DecisionAuditSeq,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(CampaignInstances::Stage).integer().not_null().default(1).to_owned(),
            ColumnDef::new(CampaignInstances::Stages).integer().not_null().default(1).to_owned(),
            ColumnDef::new(CampaignInstances::StageStartedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(CampaignInstances::StageDueAt).timestamp_with_time_zone().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(CampaignInstances::Table).add_column(column).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ReviewItems::Table)
                    .add_column(ColumnDef::new(ReviewItems::Stage).integer().not_null().default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReviewStageReviewers::Table)
                    .col(big_integer(ReviewStageReviewers::InstanceId))
                    .col(integer(ReviewStageReviewers::Stage))
                    .col(big_integer(ReviewStageReviewers::ItemId))
                    .col(string(ReviewStageReviewers::ReviewerObject))
                    .col(string(ReviewStageReviewers::ReviewerName))
                    .col(string_null(ReviewStageReviewers::ReviewerEmail))
                    .primary_key(
                        Index::create()
                            .col(ReviewStageReviewers::InstanceId)
                            .col(ReviewStageReviewers::Stage)
                            .col(ReviewStageReviewers::ItemId)
                            .col(ReviewStageReviewers::ReviewerObject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewStageReviewers::Table, ReviewStageReviewers::ItemId)
                            .to(ReviewItems::Table, ReviewItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReviewStageDecisions::Table)
                    .col(big_integer(ReviewStageDecisions::ItemId))
                    .col(big_integer(ReviewStageDecisions::InstanceId))
                    .col(integer(ReviewStageDecisions::Stage))
                    .col(text(ReviewStageDecisions::Reviewers))
                    .col(string(ReviewStageDecisions::Decision))
                    .col(text_null(ReviewStageDecisions::Justification))
                    .col(string_null(ReviewStageDecisions::DecidedBy))
                    .col(string_null(ReviewStageDecisions::DecidedById))
                    .col(timestamp_with_time_zone_null(ReviewStageDecisions::DecidedAt))
                    .col(string_null(ReviewStageDecisions::DecidedRecommendation))
                    .col(big_integer_null(ReviewStageDecisions::DecisionAuditSeq))
                    .primary_key(Index::create().col(ReviewStageDecisions::ItemId).col(ReviewStageDecisions::Stage))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReviewStageDecisions::Table, ReviewStageDecisions::ItemId)
                            .to(ReviewItems::Table, ReviewItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Plain SQL: the same statement on both databases.
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS ix_review_assignments_instance").await?;
        // Items by principal were never read; one index fewer to keep up at start.
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS ix_review_items_principal").await?;
        // A reviewer's counts per instance, kept in step with their assignments by every write
        // that changes them (start, decisions, reassignment, a stage's end): the inbox reads one
        // row per campaign instead of counting thousands of assignments per request.
        manager
            .create_table(
                Table::create()
                    .table(ReviewInboxCounts::Table)
                    .col(string(ReviewInboxCounts::ReviewerObject))
                    .col(big_integer(ReviewInboxCounts::InstanceId))
                    .col(string(ReviewInboxCounts::ReviewerName))
                    .col(string_null(ReviewInboxCounts::ReviewerEmail))
                    .col(big_integer(ReviewInboxCounts::Pending))
                    .col(big_integer(ReviewInboxCounts::Approved))
                    .col(big_integer(ReviewInboxCounts::Revoked))
                    .primary_key(
                        Index::create().col(ReviewInboxCounts::ReviewerObject).col(ReviewInboxCounts::InstanceId),
                    )
                    .to_owned(),
            )
            .await?;
        // Existing running instances' counts (none before this release, but exact either way).
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO review_inbox_counts (reviewer_object, instance_id, reviewer_name, reviewer_email, pending, \
                 approved, revoked) SELECT reviewer_object, instance_id, MIN(reviewer_name), MIN(reviewer_email), \
                 SUM(CASE WHEN decision = 'pending' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN decision = 'approve' THEN 1 ELSE 0 END), SUM(CASE WHEN decision = 'revoke' THEN 1 ELSE 0 END) \
                 FROM review_assignments GROUP BY reviewer_object, instance_id",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_review_items_principal")
                    .table(ReviewItems::Table)
                    .col(ReviewItems::InstanceId)
                    .col(ReviewItems::PrincipalId)
                    .to_owned(),
            )
            .await?;
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
        for table in [
            ReviewInboxCounts::Table.into_iden(),
            ReviewStageDecisions::Table.into_iden(),
            ReviewStageReviewers::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager
            .alter_table(Table::alter().table(ReviewItems::Table).drop_column(ReviewItems::Stage).to_owned())
            .await?;
        for column in [
            CampaignInstances::Stage,
            CampaignInstances::Stages,
            CampaignInstances::StageStartedAt,
            CampaignInstances::StageDueAt,
        ] {
            manager.alter_table(Table::alter().table(CampaignInstances::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
