//! Functions that make a statement unfit for a replica (writes, locks, session-bound state,
//! server-wide side effects) or for the result cache (volatile results).
//!
//! Matched on the last part of the name whatever the schema (`pg_catalog.nextval` and
//! `myschema.nextval` both count: a false positive only costs a trip to the primary).

/// What calling a function means for routing and caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FnClass {
    /// Writes, locks, touches session-bound state or has a server-wide effect: primary only.
    SideEffect,
    /// Harmless on a replica, but its result changes from call to call: never cache.
    Volatile,
    Other,
}

/// Side-effect functions by exact name.
const SIDE_EFFECT: &[&str] = &[
    // sequences (currval/lastval read session state that lives on the primary backend)
    "nextval",
    "setval",
    "currval",
    "lastval",
    // settings, transaction ids, notifications
    "set_config",
    "setseed",
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_notify",
    // large objects (also the lo_* prefix below)
    "loread",
    "lowrite",
    // other servers' sessions and the server itself
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot",
    "pg_import_system_collations",
    "pg_extension_config_dump",
    "pg_stat_statements_reset",
    "pg_truncate_visibility_map",
    // WAL and backups (several fail on a standby)
    "pg_switch_wal",
    "pg_switch_xlog",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_export_snapshot",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_current_xlog_location",
    "pg_current_xlog_insert_location",
    "pg_current_xlog_flush_location",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_sync_replication_slots",
    "pg_walfile_name",
    "pg_walfile_name_offset",
    // index maintenance (55000 on a standby)
    "brin_summarize_new_values",
    "brin_summarize_range",
    "brin_desummarize_range",
    "gin_clean_pending_list",
];

/// Side-effect functions by prefix.
const SIDE_EFFECT_PREFIX: &[&str] = &[
    "pg_advisory_",     // pg_advisory_lock, _xact_lock, _unlock, _unlock_all, ..._shared
    "pg_try_advisory_", // pg_try_advisory_lock, _xact_lock, ..._shared
    "lo_",              // lo_import, lo_export, lo_create, lo_unlink, lo_put, lo_open, ...
    "dblink",           // dblink, dblink_exec, dblink_connect, dblink_send_query, ...
    "pg_stat_reset",    // pg_stat_reset, _shared, _single_table_counters, _slru, ...
    "pg_backup_",       // pg_backup_start, pg_backup_stop
    "pg_create_",       // pg_create_restore_point, pg_create_*_replication_slot
    "pg_copy_",         // pg_copy_*_replication_slot
    "pg_logical_",      // pg_logical_emit_message, pg_logical_slot_get_changes, ...
    "pg_replication_origin_",
    "pg_wal_replay_", // pause/resume: standby only, but never routed by accident
    "pg_xlog_replay_",
    "pg_file_",    // adminpack: pg_file_write, _rename, _unlink, _sync
    "pg_restore_", // pg_restore_relation_stats, pg_restore_attribute_stats
    "pg_clear_",   // pg_clear_relation_stats, pg_clear_attribute_stats
];

/// Volatile (or per-backend) functions that are fine on a replica.
const VOLATILE: &[&str] = &[
    "now",
    "statement_timestamp",
    "transaction_timestamp",
    "clock_timestamp",
    "timeofday",
    "age", // age(timestamp) is measured from current_date
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_backend_pid",
    "pg_is_in_recovery",
    "pg_last_wal_replay_lsn",
    "pg_last_wal_receive_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_last_xlog_replay_location",
    "pg_last_xlog_receive_location",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
    "current_setting",
    "inet_client_addr",
    "inet_client_port",
    "inet_server_addr",
    "inet_server_port",
    "txid_current_snapshot",
    "pg_current_snapshot",
];

const VOLATILE_PREFIX: &[&str] = &["uuid_generate_", "pg_stat_get_"];

/// SQL-standard functions written without parentheses (`current_timestamp`, `localtime`).
pub(crate) const VOLATILE_KEYWORDS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// Date/time input strings evaluated when the statement runs (`'now'::timestamptz`).
pub(crate) const VOLATILE_LITERALS: &[&str] = &["now", "today", "tomorrow", "yesterday"];

/// Built-in meaning of a function by its last name part (already folded: lower case unless
/// it was quoted).
pub(crate) fn builtin(name: &str) -> FnClass {
    if SIDE_EFFECT.contains(&name) || SIDE_EFFECT_PREFIX.iter().any(|p| name.starts_with(p)) {
        FnClass::SideEffect
    } else if VOLATILE.contains(&name) || VOLATILE_PREFIX.iter().any(|p| name.starts_with(p)) {
        FnClass::Volatile
    } else {
        FnClass::Other
    }
}

/// Is a call to `schema.name` (`schema` when written) on the configured write list? An entry
/// `audit.log_event` matches `audit.log_event(...)` and an unqualified `log_event(...)` (the
/// search_path may find it); an entry `log_event` matches it in any schema.
pub(crate) fn configured(schema: Option<&str>, name: &str, extra: &[String]) -> bool {
    extra.iter().any(|entry| match entry.rsplit_once('.') {
        Some((s, n)) => {
            n.eq_ignore_ascii_case(name) && schema.is_none_or(|q| q.eq_ignore_ascii_case(s))
        }
        None => entry.eq_ignore_ascii_case(name),
    })
}

/// Normalises configured names: trimmed, lower case, empty entries dropped.
pub(crate) fn normalize_extra(extra: &[String]) -> Vec<String> {
    extra
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}
