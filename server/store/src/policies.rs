//! Conditional Access storage: policies (JSON documents with every version kept), named
//! locations, groups and their members. Every change bumps one counter (`ca.version` in
//! `settings`) in the same transaction, so an instance that caches the policies knows when to
//! read them again.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError, StoreResult, User, USER_COLUMNS_U};

/// The settings row counting every change to policies, locations and groups.
pub const CA_VERSION_SETTING: &str = "ca.version";

pub(crate) const BUMP_VERSION: &str =
    "INSERT INTO settings (name, value, updated_at) VALUES ('ca.version', '1', $1) \
     ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT), \
     updated_at = $1";

/// A stored policy: its document and who changed it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub id: String,
    pub name: String,
    pub state: String,
    pub document: String,
    pub version: i64,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub updated_at: i64,
    pub updated_by: Option<String>,
}

impl PolicyRecord {
    fn from_row(row: &AnyRow) -> StoreResult<Self> {
        Ok(PolicyRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            state: row.try_get("state")?,
            document: row.try_get("document")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
            updated_at: row.try_get("updated_at")?,
            updated_by: row.try_get("updated_by")?,
        })
    }
}

const POLICY_COLUMNS: &str =
    "id, name, state, document, version, created_at, created_by, updated_at, updated_by";

/// One saved version of a policy (an empty document: the policy was deleted then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version: i64,
    pub document: String,
    pub changed_at: i64,
    pub changed_by: Option<String>,
}

/// A stored named location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRecord {
    pub id: String,
    pub name: String,
    pub document: String,
    pub updated_at: i64,
}

/// A group of accounts, with how many members it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub members: i64,
}

impl Store {
    /// The counter of changes to policies, locations and groups (0 before the first).
    pub async fn ca_version(&self) -> StoreResult<i64> {
        Ok(self
            .get_setting(CA_VERSION_SETTING)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM ca_policies ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PolicyRecord::from_row).collect()
    }

    pub async fn find_policy(&self, id: &str) -> StoreResult<Option<PolicyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM ca_policies WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| PolicyRecord::from_row(&r)).transpose()
    }

    /// Saves a policy (new, or the next version of an existing one) and its history row.
    /// Returns the version saved.
    pub async fn put_policy(
        &self,
        id: &str,
        name: &str,
        state: &str,
        document: &str,
        actor: Option<&str>,
        now: i64,
    ) -> StoreResult<i64> {
        // The history row first: its version is counted in the statement that writes it, so
        // the transaction writes before it reads.
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ca_policy_versions (policy_id, version, document, changed_at, changed_by) \
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM ca_policy_versions \
             WHERE policy_id = $1",
        )
        .bind(id)
        .bind(document)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let version: i64 =
            sqlx::query("SELECT MAX(version) FROM ca_policy_versions WHERE policy_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        sqlx::query(
            "INSERT INTO ca_policies (id, name, state, document, version, created_at, created_by, \
             updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET name = $2, state = $3, document = $4, version = $5, \
             updated_at = $6, updated_by = $7",
        )
        .bind(id)
        .bind(name)
        .bind(state)
        .bind(document)
        .bind(version)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Deletes a policy; its history keeps a last, empty version. False when there is none.
    pub async fn delete_policy(
        &self,
        id: &str,
        actor: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM ca_policies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO ca_policy_versions (policy_id, version, document, changed_at, changed_by) \
             SELECT $1, MAX(version) + 1, '', $2, $3 FROM ca_policy_versions WHERE policy_id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every saved version of a policy, newest first.
    pub async fn policy_history(&self, id: &str) -> StoreResult<Vec<PolicyVersion>> {
        let rows = sqlx::query(
            "SELECT version, document, changed_at, changed_by FROM ca_policy_versions \
             WHERE policy_id = $1 ORDER BY version DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyVersion {
                    version: r.try_get("version")?,
                    document: r.try_get("document")?,
                    changed_at: r.try_get("changed_at")?,
                    changed_by: r.try_get("changed_by")?,
                })
            })
            .collect()
    }

    pub async fn list_locations(&self) -> StoreResult<Vec<LocationRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, document, updated_at FROM named_locations ORDER BY name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LocationRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    document: r.try_get("document")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Adds a named location, or replaces the one with the same id.
    pub async fn put_location(
        &self,
        id: &str,
        name: &str,
        document: &str,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO named_locations (id, name, document, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = $2, document = $3, updated_at = $4",
        )
        .bind(id)
        .bind(name)
        .bind(document)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_location(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM named_locations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 1 {
            sqlx::query(BUMP_VERSION)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Creates a group; `Conflict` when the id or the name is taken.
    pub async fn create_group(
        &self,
        id: &str,
        name: &str,
        description: &str,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO user_groups (id, name, description, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        }
        sqlx::query(BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames a group and changes its description (its id, and so every policy naming it,
    /// stays). Returns false when there is no such group; another group's name is a conflict.
    pub async fn update_group(
        &self,
        id: &str,
        name: &str,
        description: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE user_groups SET name = $1, description = $2 WHERE id = $3")
            .bind(name)
            .bind(description)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(BUMP_VERSION)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_groups(&self) -> StoreResult<Vec<GroupRecord>> {
        let rows = sqlx::query(
            "SELECT g.id, g.name, g.description, g.created_at, \
             (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS members \
             FROM user_groups g ORDER BY g.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GroupRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                    members: r.try_get("members")?,
                })
            })
            .collect()
    }

    /// Deletes a group and its memberships.
    pub async fn delete_group(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 1 {
            sqlx::query(BUMP_VERSION)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Adds an account to a group; false when it already was a member, `Conflict` when there
    /// is no such group or account.
    pub async fn add_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, added_at) SELECT $1, $2, $3 \
             WHERE EXISTS (SELECT 1 FROM user_groups WHERE id = $1) \
             AND EXISTS (SELECT 1 FROM users WHERE id = $2) ON CONFLICT DO NOTHING",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            sqlx::query(BUMP_VERSION)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(true);
        }
        tx.rollback().await?;
        let member: i64 =
            sqlx::query("SELECT COUNT(*) FROM group_members WHERE group_id = $1 AND user_id = $2")
                .bind(group_id)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        if member == 1 {
            Ok(false)
        } else {
            Err(StoreError::Conflict)
        }
    }

    pub async fn remove_group_member(
        &self,
        group_id: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 1 {
            sqlx::query(BUMP_VERSION)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// The ids of every administrator account.
    pub async fn admin_ids(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM users WHERE is_admin = 1 ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The ids of the groups an account is a member of.
    pub async fn groups_of_user(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The members of a group, by email.
    pub async fn group_members(&self, group_id: &str) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS_U} FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 ORDER BY u.email"
        ))
        .bind(group_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(User::from_row).collect()
    }
}
