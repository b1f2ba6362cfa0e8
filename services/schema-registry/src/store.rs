//! The registry's PostgreSQL tables: schemas by global id, subject versions,
//! and compatibility levels.
//!
//! Every function runs one statement on whatever executor it is given, so the
//! API can compose them inside one transaction where it matters
//! (registration) and run them straight on the pool where it does not.

use crate::{avro::ParsedSchema, compat::Compatibility};
use sqlx::{PgConnection, PgExecutor, Row, postgres::PgRow};

/// Advisory-lock namespace for subjects ("REGI"), so the registry's locks
/// cannot collide with another application's on a shared server.
const SUBJECT_LOCK_SPACE: i32 = 0x5245_4749;

/// One version of a subject, with the schema it points at.
#[derive(Debug, Clone)]
pub(crate) struct SubjectVersion {
    pub(crate) version: i32,
    pub(crate) schema_id: i32,
    pub(crate) schema_text: String,
    pub(crate) normalized: String,
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionRef {
    Latest,
    Number(i32),
}

impl TryFrom<PgRow> for SubjectVersion {
    type Error = sqlx::Error;

    fn try_from(row: PgRow) -> Result<Self, Self::Error> {
        Ok(Self {
            version: row.try_get("version")?,
            schema_id: row.try_get("schema_id")?,
            schema_text: row.try_get("schema_text")?,
            normalized: row.try_get("normalized")?,
        })
    }
}

const VERSION_COLUMNS: &str = "SELECT v.version, v.schema_id, s.schema_text, s.normalized \
     FROM registry_subject_versions v JOIN registry_schemas s ON s.id = v.schema_id";

/// Serialises registrations under one subject until the transaction ends, so
/// two concurrent registrations cannot both take the next version number or
/// both pass a compatibility check against a version the other is replacing.
#[tracing::instrument(skip_all, fields(subject = %subject), err)]
pub(crate) async fn lock_subject(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(SUBJECT_LOCK_SPACE)
        .bind(subject)
        .execute(conn)
        .await?;
    Ok(())
}

/// All versions of `subject`, oldest first; empty when the subject is unknown.
#[tracing::instrument(skip_all, fields(subject = %subject), err)]
pub(crate) async fn versions(
    ex: impl PgExecutor<'_>,
    subject: &str,
) -> Result<Vec<SubjectVersion>, sqlx::Error> {
    sqlx::query(&format!(
        "{VERSION_COLUMNS} WHERE v.subject = $1 ORDER BY v.version"
    ))
    .bind(subject)
    .fetch_all(ex)
    .await?
    .into_iter()
    .map(SubjectVersion::try_from)
    .collect()
}

/// One version of `subject`, if both exist.
#[tracing::instrument(skip_all, fields(subject = %subject, version = ?version), err)]
pub(crate) async fn version(
    ex: impl PgExecutor<'_>,
    subject: &str,
    version: VersionRef,
) -> Result<Option<SubjectVersion>, sqlx::Error> {
    let row = match version {
        VersionRef::Latest => {
            let sql =
                format!("{VERSION_COLUMNS} WHERE v.subject = $1 ORDER BY v.version DESC LIMIT 1");
            sqlx::query(&sql).bind(subject).fetch_optional(ex).await?
        }
        VersionRef::Number(n) => {
            let sql = format!("{VERSION_COLUMNS} WHERE v.subject = $1 AND v.version = $2");
            sqlx::query(&sql)
                .bind(subject)
                .bind(n)
                .fetch_optional(ex)
                .await?
        }
    };
    row.map(SubjectVersion::try_from).transpose()
}

#[tracing::instrument(skip_all, fields(subject = %subject), err)]
pub(crate) async fn subject_exists(
    ex: impl PgExecutor<'_>,
    subject: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM registry_subject_versions WHERE subject = $1)")
        .bind(subject)
        .fetch_one(ex)
        .await
}

/// Subjects with at least one version, in byte order so the listing does not
/// depend on the database's collation.
#[tracing::instrument(skip_all, err)]
pub(crate) async fn subjects(ex: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT subject COLLATE \"C\" AS subject FROM registry_subject_versions ORDER BY 1",
    )
    .fetch_all(ex)
    .await
}

/// The schema text registered under global `id`.
#[tracing::instrument(skip_all, fields(schema_id = id), err)]
pub(crate) async fn schema_text(
    ex: impl PgExecutor<'_>,
    id: i32,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT schema_text FROM registry_schemas WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await
}

/// The global id of `schema`, allocating one if no subject has used it yet.
#[tracing::instrument(skip_all, err)]
pub(crate) async fn schema_id(
    conn: &mut PgConnection,
    schema: &ParsedSchema,
) -> Result<i32, sqlx::Error> {
    const FIND: &str =
        "SELECT id FROM registry_schemas WHERE fingerprint = sha256(convert_to($1, 'UTF8'))";
    if let Some(id) = sqlx::query_scalar(FIND)
        .bind(&schema.normalized)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(id);
    }
    // Another subject may be inserting the same schema right now: ON CONFLICT
    // waits for it and yields nothing, and the second FIND (a new snapshot)
    // then sees its row.
    let inserted = sqlx::query_scalar(
        "INSERT INTO registry_schemas (schema_type, schema_text, normalized, fingerprint) \
         VALUES ('AVRO', $1, $2, sha256(convert_to($2, 'UTF8'))) \
         ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
    )
    .bind(&schema.text)
    .bind(&schema.normalized)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => Ok(id),
        None => {
            sqlx::query_scalar(FIND)
                .bind(&schema.normalized)
                .fetch_one(&mut *conn)
                .await
        }
    }
}

#[tracing::instrument(skip_all, fields(subject = %subject, version = version, schema_id = schema_id), err)]
pub(crate) async fn insert_version(
    ex: impl PgExecutor<'_>,
    subject: &str,
    version: i32,
    schema_id: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registry_subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)",
    )
    .bind(subject)
    .bind(version)
    .bind(schema_id)
    .execute(ex)
    .await?;
    Ok(())
}

fn decode_level(text: Option<String>) -> Result<Option<Compatibility>, sqlx::Error> {
    text.map(|t| t.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// The level set with `PUT /config`, if any.
#[tracing::instrument(skip_all, err)]
pub(crate) async fn global_level(
    ex: impl PgExecutor<'_>,
) -> Result<Option<Compatibility>, sqlx::Error> {
    let text = sqlx::query_scalar("SELECT compatibility FROM registry_global_config")
        .fetch_optional(ex)
        .await?;
    decode_level(text)
}

#[tracing::instrument(skip_all, fields(level = %level), err)]
pub(crate) async fn set_global_level(
    ex: impl PgExecutor<'_>,
    level: Compatibility,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registry_global_config (singleton, compatibility) VALUES (TRUE, $1) \
         ON CONFLICT (singleton) DO UPDATE SET compatibility = EXCLUDED.compatibility",
    )
    .bind(level.as_str())
    .execute(ex)
    .await?;
    Ok(())
}

/// The level set with `PUT /config/{subject}`, if any.
#[tracing::instrument(skip_all, fields(subject = %subject), err)]
pub(crate) async fn subject_level(
    ex: impl PgExecutor<'_>,
    subject: &str,
) -> Result<Option<Compatibility>, sqlx::Error> {
    let text =
        sqlx::query_scalar("SELECT compatibility FROM registry_subject_config WHERE subject = $1")
            .bind(subject)
            .fetch_optional(ex)
            .await?;
    decode_level(text)
}

#[tracing::instrument(skip_all, fields(subject = %subject, level = %level), err)]
pub(crate) async fn set_subject_level(
    ex: impl PgExecutor<'_>,
    subject: &str,
    level: Compatibility,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO registry_subject_config (subject, compatibility) VALUES ($1, $2) \
         ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
    )
    .bind(subject)
    .bind(level.as_str())
    .execute(ex)
    .await?;
    Ok(())
}

/// Removes the subject's own level and returns it, if it had one.
#[tracing::instrument(skip_all, fields(subject = %subject), err)]
pub(crate) async fn delete_subject_level(
    ex: impl PgExecutor<'_>,
    subject: &str,
) -> Result<Option<Compatibility>, sqlx::Error> {
    let text = sqlx::query_scalar(
        "DELETE FROM registry_subject_config WHERE subject = $1 RETURNING compatibility",
    )
    .bind(subject)
    .fetch_optional(ex)
    .await?;
    decode_level(text)
}

#[tracing::instrument(skip_all, err)]
pub(crate) async fn ping(ex: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(ex).await?;
    Ok(())
}
