//! The PostgreSQL store's records of a build (events, artifacts, screenshots), the tokens
//! and the workers.

use super::postgres::{pg, PgStore};
use super::*;
use async_trait::async_trait;
use osimager_events::now_rfc3339;
use tokio_postgres::Row;

fn token_row(r: &Row) -> TokenInfo {
    TokenInfo {
        id: r.get(0),
        name: r.get(1),
        created_at: r.get(2),
        last_used: r.get(3),
        role: TokenRole::parse(r.get(4)),
    }
}

pub(super) fn worker_row(r: &Row) -> StoreResult<WorkerInfo> {
    let caps: String = r.get(1);
    Ok(WorkerInfo {
        name: r.get(0),
        capabilities: serde_json::from_str(&caps)
            .map_err(|e| StoreError::Db(format!("a stored worker's capabilities: {e}")))?,
        registered_at: r.get(2),
        last_seen: r.get(3),
    })
}

const TOKEN_COLS: &str = "id, name, created_at, last_used, role";
pub(super) const WORKER_COLS: &str = "name, capabilities, registered_at, last_seen";

#[async_trait]
impl RecordStore for PgStore {
    async fn append_events(&self, id: JobId, events: &[StoredEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let records: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        self.client()
            .await?
            .execute(
                "INSERT INTO events (job, seq, type, record) \
                 SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&id, &seqs, &kinds, &records],
            )
            .await
            .map_err(pg("storing events"))?;
        Ok(())
    }

    async fn events(
        &self,
        id: JobId,
        from: u64,
        limit: u32,
        kinds: &[&str],
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT seq, type, record FROM events WHERE job = $1 AND seq >= $2 \
                 AND (cardinality($3::text[]) = 0 OR type = ANY($3)) ORDER BY seq LIMIT $4",
                &[&id, &(from as i64), &kinds, &i64::from(limit.max(1))],
            )
            .await
            .map_err(pg("reading events"))?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                seq: r.get::<_, i64>(0) as u64,
                kind: r.get(1),
                json: r.get(2),
            })
            .collect())
    }

    async fn put_artifact(&self, id: JobId, a: &Artifact) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO artifacts (job, name, path, size, sha256) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (job, name) DO UPDATE SET path = excluded.path, \
                 size = excluded.size, sha256 = excluded.sha256",
                &[&id, &a.name, &a.path, &(a.size as i64), &a.sha256],
            )
            .await
            .map_err(pg("recording an artifact"))?;
        Ok(())
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<Artifact>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, path, size, sha256 FROM artifacts WHERE job = $1 \
                 ORDER BY name COLLATE \"C\"",
                &[&id],
            )
            .await
            .map_err(pg("reading artifacts"))?;
        Ok(rows
            .iter()
            .map(|r| Artifact {
                name: r.get(0),
                path: r.get(1),
                size: r.get::<_, i64>(2) as u64,
                sha256: r.get(3),
            })
            .collect())
    }

    async fn put_screenshot(&self, id: JobId, s: &Screenshot) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO screenshots (job, idx, seq, name, file, time) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job, idx) DO UPDATE SET \
                 seq = excluded.seq, name = excluded.name, file = excluded.file, \
                 time = excluded.time",
                &[
                    &id,
                    &i64::from(s.index),
                    &(s.seq as i64),
                    &s.name,
                    &s.file,
                    &s.time,
                ],
            )
            .await
            .map_err(pg("recording a screenshot"))?;
        Ok(())
    }

    async fn screenshots(&self, id: JobId) -> StoreResult<Vec<Screenshot>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT idx, seq, name, file, time FROM screenshots WHERE job = $1 ORDER BY idx",
                &[&id],
            )
            .await
            .map_err(pg("reading screenshots"))?;
        Ok(rows
            .iter()
            .map(|r| Screenshot {
                index: r.get::<_, i64>(0) as u32,
                seq: r.get::<_, i64>(1) as u64,
                name: r.get(2),
                file: r.get(3),
                time: r.get(4),
            })
            .collect())
    }

    async fn create_token_as(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
    ) -> StoreResult<TokenInfo> {
        let id: String = hash.chars().take(12).collect();
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "INSERT INTO tokens (id, name, hash, created_at, role) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING \
                     RETURNING {TOKEN_COLS}"
                ),
                &[&id, &name, &hash, &now_rfc3339(), &role.as_str()],
            )
            .await
            .map_err(pg("creating a token"))?;
        match row {
            Some(r) => Ok(token_row(&r)),
            None => Err(StoreError::Conflict(format!(
                "a token named '{name}' exists; revoke it first or choose another name"
            ))),
        }
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY name COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(pg("listing tokens"))?;
        Ok(rows.iter().map(token_row).collect())
    }

    async fn revoke_token(&self, name_or_id: &str) -> StoreResult<()> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM tokens WHERE name = $1 OR id = $1",
                &[&name_or_id],
            )
            .await
            .map_err(pg("revoking a token"))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no token named '{name_or_id}' (and none with that id); `osimager serve token list` shows them"
            )));
        }
        Ok(())
    }

    async fn check_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        let c = self.client().await?;
        let found = c
            .query_opt(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"),
                &[&hash],
            )
            .await
            .map_err(pg("checking a token"))?
            .map(|r| token_row(&r));
        if let Some(t) = &found {
            // Once a minute is enough: not a write per request.
            let minute_ago = humantime::format_rfc3339_millis(
                std::time::SystemTime::now() - std::time::Duration::from_secs(60),
            )
            .to_string();
            c.execute(
                "UPDATE tokens SET last_used = $2 WHERE id = $1 \
                 AND (last_used IS NULL OR last_used < $3)",
                &[&t.id, &now_rfc3339(), &minute_ago],
            )
            .await
            .map_err(pg("checking a token"))?;
        }
        Ok(found)
    }
}
