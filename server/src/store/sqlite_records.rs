//! The SQLite store's records of a build (events, artifacts, screenshots) and the API tokens;
//! [`super::SqliteStore`]'s `JobStore` methods for them delegate here.

use super::sqlite::{db, token_row, SqliteStore};
use super::*;
use async_trait::async_trait;
use osimager_events::now_rfc3339;
use rusqlite::{params, params_from_iter, OptionalExtension};

#[async_trait]
impl RecordStore for SqliteStore {
    async fn append_events(&self, id: JobId, events: &[StoredEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.with("storing events", move |c| {
            let tx = c.transaction().map_err(db("storing events"))?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO events (job, seq, type, record) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(db("storing events"))?;
                for e in &events {
                    st.execute(params![id, e.seq as i64, e.kind, e.json])
                        .map_err(db("storing events"))?;
                }
            }
            tx.commit().map_err(db("storing events"))
        })
        .await
    }

    async fn events(
        &self,
        id: JobId,
        from: u64,
        limit: u32,
        kinds: &[&str],
    ) -> StoreResult<Vec<StoredEvent>> {
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        self.with("reading events", move |c| {
            let mut args: Vec<rusqlite::types::Value> = vec![id.into(), (from as i64).into()];
            let mut sql =
                "SELECT seq, type, record FROM events WHERE job = ?1 AND seq >= ?2".to_string();
            if !kinds.is_empty() {
                let marks: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        args.push(k.clone().into());
                        format!("?{}", args.len())
                    })
                    .collect();
                sql.push_str(&format!(" AND type IN ({})", marks.join(",")));
            }
            sql.push_str(&format!(" ORDER BY seq LIMIT {}", limit.max(1)));
            let mut st = c.prepare_cached(&sql).map_err(db("reading events"))?;
            let rows = st
                .query_map(params_from_iter(args), |r| {
                    Ok(StoredEvent {
                        seq: r.get::<_, i64>(0)? as u64,
                        kind: r.get(1)?,
                        json: r.get(2)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("reading events"))?;
            Ok(rows)
        })
        .await
    }

    async fn put_artifact(&self, id: JobId, a: &Artifact) -> StoreResult<()> {
        let a = a.clone();
        self.with("recording an artifact", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO artifacts (job, name, path, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, a.name, a.path, a.size as i64, a.sha256],
            )
            .map_err(db("recording an artifact"))?;
            Ok(())
        })
        .await
    }

    async fn artifacts(&self, id: JobId) -> StoreResult<Vec<Artifact>> {
        self.with("reading artifacts", move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT name, path, size, sha256 FROM artifacts WHERE job = ?1 ORDER BY name",
                )
                .map_err(db("reading artifacts"))?;
            let rows = st
                .query_map([id], |r| {
                    Ok(Artifact {
                        name: r.get(0)?,
                        path: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        sha256: r.get(3)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("reading artifacts"))?;
            Ok(rows)
        })
        .await
    }

    async fn put_screenshot(&self, id: JobId, s: &Screenshot) -> StoreResult<()> {
        let s = s.clone();
        self.with("recording a screenshot", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO screenshots (job, idx, seq, name, file, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, s.index, s.seq as i64, s.name, s.file, s.time],
            )
            .map_err(db("recording a screenshot"))?;
            Ok(())
        })
        .await
    }

    async fn screenshots(&self, id: JobId) -> StoreResult<Vec<Screenshot>> {
        self.with("reading screenshots", move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT idx, seq, name, file, time FROM screenshots WHERE job = ?1 ORDER BY idx",
                )
                .map_err(db("reading screenshots"))?;
            let rows = st
                .query_map([id], |r| {
                    Ok(Screenshot {
                        index: r.get(0)?,
                        seq: r.get::<_, i64>(1)? as u64,
                        name: r.get(2)?,
                        file: r.get(3)?,
                        time: r.get(4)?,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("reading screenshots"))?;
            Ok(rows)
        })
        .await
    }

    async fn create_token_as(
        &self,
        name: &str,
        hash: &str,
        role: TokenRole,
    ) -> StoreResult<TokenInfo> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.with("creating a token", move |c| {
            let taken: Option<String> = c
                .query_row("SELECT id FROM tokens WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db("creating a token"))?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a token named '{name}' exists; revoke it first or choose another name"
                )));
            }
            let id: String = hash.chars().take(12).collect();
            c.execute(
                "INSERT INTO tokens (id, name, hash, created_at, role) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, hash, now_rfc3339(), role.as_str()],
            )
            .map_err(db("creating a token"))?;
            c.query_row(
                "SELECT id, name, created_at, last_used, role FROM tokens WHERE id = ?1",
                [&id],
                token_row,
            )
            .map_err(db("creating a token"))
        })
        .await
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        self.with("listing tokens", |c| {
            let mut st = c
                .prepare("SELECT id, name, created_at, last_used, role FROM tokens ORDER BY name")
                .map_err(db("listing tokens"))?;
            let rows = st
                .query_map([], token_row)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db("listing tokens"))?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_token(&self, name_or_id: &str) -> StoreResult<()> {
        let key = name_or_id.to_string();
        self.with("revoking a token", move |c| {
            let n = c
                .execute("DELETE FROM tokens WHERE name = ?1 OR id = ?1", [&key])
                .map_err(db("revoking a token"))?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "no token named '{key}' (and none with that id); `osimager serve token list` shows them"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn check_token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        let hash = hash.to_string();
        self.with("checking a token", move |c| {
            let found = c
                .query_row(
                    "SELECT id, name, created_at, last_used, role FROM tokens WHERE hash = ?1",
                    [&hash],
                    token_row,
                )
                .optional()
                .map_err(db("checking a token"))?;
            if let Some(t) = &found {
                // Once a minute is enough: not a write per request.
                let minute_ago = humantime::format_rfc3339_millis(
                    std::time::SystemTime::now() - std::time::Duration::from_secs(60),
                )
                .to_string();
                c.execute(
                    "UPDATE tokens SET last_used = ?2 WHERE id = ?1 AND (last_used IS NULL OR last_used < ?3)",
                    params![t.id, now_rfc3339(), minute_ago],
                )
                .map_err(db("checking a token"))?;
            }
            Ok(found)
        })
        .await
    }
}
