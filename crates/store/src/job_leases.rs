//! Job leases: several replicas share one database, and a background job (a connector's
//! scheduled sync) must run on one of them at a time. A replica takes the job's lease before
//! running it; a lease left by a replica that died expires and another takes over.

use attest_domain::time::micros;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::StoreError;
use crate::areas::Leases;
use crate::sql::Sql;

impl Leases<'_> {
    /// Takes (or renews) the lease on `job` for `owner` until `until`, unless another owner
    /// holds it unexpired. Returns whether `owner` holds it now.
    pub async fn acquire_job_lease(
        self,
        job: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (until, now) = (micros(until), micros(now));
        let mut sql = Sql::new(self.backend(), "INSERT INTO job_leases (name, owner, expires_at, updated_at) VALUES (");
        sql.value(job.to_owned()).push(", ").value(owner.to_owned()).push(", ").value(until).push(", ").value(now);
        sql.push(") ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at, ");
        sql.push(
            "updated_at = excluded.updated_at WHERE job_leases.owner = excluded.owner OR job_leases.expires_at < ",
        );
        sql.value(now).push(" RETURNING name");
        Ok(self.db.query_one_raw(sql.build()).await?.is_some())
    }

    /// Gives the lease back early (the job finished), if `owner` still holds it.
    pub async fn release_job_lease(self, job: &str, owner: &str) -> Result<(), StoreError> {
        let mut sql = Sql::new(self.backend(), "DELETE FROM job_leases WHERE name = ");
        sql.value(job.to_owned()).push(" AND owner = ").value(owner.to_owned());
        self.db.execute_raw(sql.build()).await?;
        Ok(())
    }
}
