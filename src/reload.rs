//! Reloading a running job's config file (SIGHUP, `systemctl reload`): what is safe to change live is applied,
//! every other key that changed is named as needing a restart, and the running values are kept.
//!
//! Applied live: `[alerts]` (the rules sit behind a lock the metrics thread reads at each check), `[log]
//! filter`, and the credentials of database sinks (`user`, `password`, `token` of an influxdb sink; the user and
//! password of a postgres sink's `connect` string, or its `password_env`), which the sink's writer thread
//! takes before its next write (`sink::batch::reload_credentials`). Anything else — sources, windows, the rest
//! of the sinks, threads, the metrics endpoint, checkpoints — is built into threads and rings at the start, so a
//! change there waits for the next start. A file that no longer
//! reads or validates changes nothing: its error (key, line, reason) is logged and the job runs on as it was.

use crate::config::{self, AlertsConfig, InfluxAuth, Plan};
use crate::sink::batch::{reload_credentials, Credentials};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Sets the log filter (a `RUST_LOG`-style directive string).
pub type SetLog = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// What a reload did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Keys changed and applied.
    pub applied: Vec<String>,
    /// Keys changed that only a restart applies (their running values kept).
    pub need_restart: Vec<String>,
    /// The file did not read or validate: nothing was changed.
    pub error: Option<String>,
}

impl Outcome {
    /// One line for the service manager's `STATUS=`.
    pub fn status(&self) -> String {
        if let Some(e) = &self.error {
            let first = e.lines().next().unwrap_or_default();
            return format!("reload failed, running config kept: {first}");
        }
        let mut s = if self.applied.is_empty() {
            "reloaded: nothing to apply".to_string()
        } else {
            format!("reloaded: applied {}", self.applied.join(", "))
        };
        if !self.need_restart.is_empty() {
            s.push_str(&format!("; needs a restart: {}", self.need_restart.join(", ")));
        }
        s
    }
}

/// A running job's config, as the file said when it was last applied.
pub struct Reloader {
    path: PathBuf,
    /// Every key of the file (dotted, arrays of tables indexed: `sink[1].path`) with the value running.
    running: BTreeMap<String, toml::Value>,
    alerts: Arc<Mutex<AlertsConfig>>,
    set_log: SetLog,
    /// The log filter when the file sets none (`RUST_LOG`, else `info`).
    default_log: String,
}

/// Whether a change of `key` is applied while the job runs (sink credentials: `Reloader::credential_live`).
fn live(key: &str) -> bool {
    key == "alerts" || key.starts_with("alerts.") || key == "log.filter"
}

/// The sink index of a credential key (`sink[2].influxdb.password`).
fn credential_key(key: &str) -> Option<usize> {
    let (i, field) = key.strip_prefix("sink[")?.split_once("].")?;
    match field {
        "influxdb.user" | "influxdb.password" | "influxdb.token" | "postgres.connect" | "postgres.password_env" => {
            i.parse().ok()
        }
        _ => None,
    }
}

/// Two postgres connection strings that name the same server and database (they may differ in the user, the
/// password and anything else a new connection takes, but not in where it goes).
fn same_database(a: &str, b: &str) -> bool {
    match (a.parse::<postgres::Config>(), b.parse::<postgres::Config>()) {
        (Ok(a), Ok(b)) => {
            a.get_hosts() == b.get_hosts() && a.get_ports() == b.get_ports() && a.get_dbname() == b.get_dbname()
        }
        _ => false,
    }
}

/// The credentials sink `i` of `plan` runs with, if it is a database sink.
fn credentials(plan: &Plan, i: usize) -> Result<Option<Credentials>, String> {
    let Some(s) = plan.sinks.get(i) else { return Ok(None) };
    if let Some(p) = &s.influxdb {
        return Ok(Some(match &p.auth {
            Some(InfluxAuth::Basic { user, password }) => {
                Credentials { user: Some(user.clone()), password: Some(password.clone()), token: None }
            }
            Some(InfluxAuth::Token(t)) => Credentials { token: Some(t.clone()), ..Credentials::default() },
            None => Credentials::default(),
        }));
    }
    if let Some(p) = &s.postgres {
        let cfg: postgres::Config = p.connect.parse().map_err(|e| format!("sink[{i}].postgres.connect: {e}"))?;
        let password = match &p.password_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| format!("sink[{i}].postgres.password_env: environment variable `{var}` is not set"))?,
            ),
            None => cfg.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
        };
        return Ok(Some(Credentials { user: cfg.get_user().map(str::to_string), password, token: None }));
    }
    Ok(None)
}

impl Reloader {
    /// For the job started from `path`, whose text was `text`; `alerts` are the rules the job checks.
    pub fn new(
        path: PathBuf,
        text: &str,
        alerts: Arc<Mutex<AlertsConfig>>,
        set_log: SetLog,
        default_log: String,
    ) -> Reloader {
        let running = toml::from_str(text).map(|v| flatten(&v)).unwrap_or_default();
        Reloader { path, running, alerts, set_log, default_log }
    }

    /// Re-reads the file and applies what can change live; logs what it did.
    pub fn reload(&mut self) -> Outcome {
        let origin = self.path.display().to_string();
        tracing::info!(config = %origin, "reloading the config file");
        let (plan, keys) = match std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {origin}: {e}"))
            .and_then(|text| Ok((config::parse(&text, &origin).map_err(|e| e.to_string())?, text)))
            .and_then(|(plan, text)| Ok((plan, flatten(&toml::from_str(&text).map_err(|e| e.to_string())?))))
        {
            Ok(v) => v,
            Err(error) => {
                tracing::error!(config = %origin, "reload: the config is not valid, the running config is kept:\n{error}");
                return Outcome { error: Some(error), ..Outcome::default() };
            }
        };
        let mut changed: Vec<String> =
            keys.iter().filter(|(k, v)| self.running.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
        changed.extend(self.running.keys().filter(|k| !keys.contains_key(*k)).cloned());
        changed.sort();
        let (applied, need_restart): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| live(k) || self.credential_live(k, &keys));
        let mut out = Outcome { applied, need_restart, error: None };
        let not_taken = match self.apply(&plan, &out.applied) {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(config = %origin, "reload: {error}; the running config is kept");
                return Outcome { error: Some(error), ..Outcome::default() };
            }
        };
        out.applied.retain(|k| !not_taken.contains(k));
        out.need_restart.extend(not_taken);
        out.need_restart.sort();
        for k in &out.applied {
            match keys.get(k) {
                Some(v) => self.running.insert(k.clone(), v.clone()),
                None => self.running.remove(k),
            };
        }
        for key in &out.need_restart {
            tracing::warn!(%key, "reload: changed in the config file, needs a restart to take effect; running value kept");
        }
        out.applied.dedup();
        tracing::info!(config = %origin, "{}", out.status());
        out
    }

    /// A changed credential key is applied live unless it moves a postgres sink to another server or
    /// database (`keys`: the new file's).
    fn credential_live(&self, key: &str, keys: &BTreeMap<String, toml::Value>) -> bool {
        match credential_key(key) {
            Some(_) if key.ends_with(".postgres.connect") => {
                let text = |m: &BTreeMap<String, toml::Value>| m.get(key).and_then(|v| v.as_str().map(str::to_string));
                matches!((text(&self.running), text(keys)), (Some(a), Some(b)) if same_database(&a, &b))
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Applies the `applied` keys of `plan`; returns those that turned out to need a restart after all (a sink
    /// that is not running to take its credentials).
    fn apply(&self, plan: &Plan, applied: &[String]) -> Result<Vec<String>, String> {
        let mut creds = Vec::new();
        for k in applied {
            if let Some(i) = credential_key(k) {
                if !creds.iter().any(|(j, _)| *j == i) {
                    creds.push((i, credentials(plan, i)?));
                }
            }
        }
        if applied.iter().any(|k| k == "log.filter") {
            let filter = plan.log.filter.as_deref().unwrap_or(&self.default_log);
            (self.set_log)(filter).map_err(|e| format!("log.filter `{filter}`: {e}"))?;
        }
        if applied.iter().any(|k| live(k) && k != "log.filter") {
            *self.alerts.lock().unwrap_or_else(|p| p.into_inner()) = plan.alerts.clone();
        }
        let mut not_taken = Vec::new();
        for (i, c) in creds {
            if !c.is_some_and(|c| reload_credentials(i, c)) {
                not_taken.extend(applied.iter().filter(|k| credential_key(k) == Some(i)).cloned());
            }
        }
        Ok(not_taken)
    }
}

/// Every leaf of a TOML document by its dotted key; arrays of tables are indexed (`window[0].size`), as config
/// errors name them; other arrays are one value.
pub fn flatten(v: &toml::Value) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&join(k), v, out);
                }
            }
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = r#"
[pipeline]
workers = 1
[alerts]
watermark_lag = "5s"
[[source]]
name = "trades"
type = "synthetic"
events = 1000
[[window]]
name = "bars"
type = "tumbling"
size = "1s"
aggregates = ["close"]
[[sink]]
stream = "bars"
type = "null"
"#;

    /// The reloader, the rules it swaps, and the log filters it set.
    type Fixture = (Reloader, Arc<Mutex<AlertsConfig>>, Arc<Mutex<Vec<String>>>);

    fn reloader(dir: &std::path::Path, text: &str) -> Fixture {
        let path = dir.join("job.toml");
        std::fs::write(&path, text).unwrap();
        let plan = config::parse(text, "job.toml").unwrap();
        let alerts = Arc::new(Mutex::new(plan.alerts));
        let filters = Arc::new(Mutex::new(Vec::new()));
        let f = filters.clone();
        let set: SetLog = Box::new(move |s| {
            f.lock().unwrap().push(s.to_string());
            Ok(())
        });
        (Reloader::new(path, text, alerts.clone(), set, "info".into()), alerts, filters)
    }

    #[test]
    fn alerts_and_log_filter_apply_other_keys_need_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, alerts, filters) = reloader(dir.path(), JOB);
        assert_eq!(r.reload(), Outcome::default(), "nothing changed");
        let text = JOB.replace("\"5s\"", "\"2s\"").replace("workers = 1", "workers = 2\n[log]\nfilter = \"warn\"");
        std::fs::write(dir.path().join("job.toml"), &text).unwrap();
        let o = r.reload();
        assert_eq!(o.applied, ["alerts.watermark_lag", "log.filter"]);
        assert_eq!(o.need_restart, ["pipeline.workers"]);
        assert_eq!(alerts.lock().unwrap().watermark_lag.0, 2_000_000_000);
        assert_eq!(*filters.lock().unwrap(), ["warn"]);
        assert_eq!(o.status(), "reloaded: applied alerts.watermark_lag, log.filter; needs a restart: pipeline.workers");
        // Applied keys are running now; the one needing a restart is still named.
        let o = r.reload();
        assert!(o.applied.is_empty() && o.need_restart == ["pipeline.workers"], "{o:?}");
        // The filter removed: back to the default.
        std::fs::write(dir.path().join("job.toml"), JOB.replace("\"5s\"", "\"2s\"")).unwrap();
        let o = r.reload();
        assert_eq!(o.applied, ["log.filter"]);
        assert_eq!(*filters.lock().unwrap(), ["warn", "info"]);
    }

    #[test]
    fn an_invalid_file_changes_nothing_and_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, alerts, filters) = reloader(dir.path(), JOB);
        std::fs::write(dir.path().join("job.toml"), JOB.replace("\"5s\"", "\"-1s\"")).unwrap();
        let o = r.reload();
        let e = o.error.clone().unwrap();
        assert!(e.contains("alerts.watermark_lag") && e.contains(":5:"), "{e}");
        assert!(o.status().starts_with("reload failed, running config kept"), "{}", o.status());
        assert_eq!(alerts.lock().unwrap().watermark_lag.0, 5_000_000_000);
        std::fs::write(dir.path().join("job.toml"), "[pipeline\n").unwrap();
        assert!(r.reload().error.is_some());
        std::fs::write(dir.path().join("job.toml"), JOB.replace("watermark_lag", "watermark_lag_typo")).unwrap();
        assert!(r.reload().error.unwrap().contains("watermark_lag_typo"));
        assert!(filters.lock().unwrap().is_empty());
    }

    #[test]
    fn credentials_of_a_sink_not_running_or_a_move_to_another_database_need_a_restart() {
        let pg = |url: &str| {
            JOB.replace(
                "type = \"null\"",
                &format!("type = \"postgres\"\n[sink.postgres]\nconnect = \"{url}\"\ntable = \"t\""),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _, _) = reloader(dir.path(), &pg("postgresql://a:x@127.0.0.1:5432/db"));
        // Another database: never live.
        std::fs::write(dir.path().join("job.toml"), pg("postgresql://a:x@127.0.0.1:5432/other")).unwrap();
        let o = r.reload();
        assert!(o.applied.is_empty() && o.need_restart == ["sink[0].postgres.connect"], "{o:?}");
        // Another password for the same database: live, but no sink of this job is running to take it.
        std::fs::write(dir.path().join("job.toml"), pg("postgresql://a:y@127.0.0.1:5432/db")).unwrap();
        let o = r.reload();
        assert!(o.applied.is_empty() && o.need_restart == ["sink[0].postgres.connect"], "{o:?}");
        assert_eq!(credential_key("sink[12].influxdb.token"), Some(12));
        assert_eq!(credential_key("sink[1].influxdb.url"), None);
        assert!(same_database("host=h port=1 user=a password=x dbname=d", "postgresql://b:y@h:1/d"));
    }

    #[test]
    fn arrays_of_tables_are_indexed() {
        let flat = flatten(&toml::from_str(JOB).unwrap());
        assert!(flat.contains_key("window[0].size") && flat.contains_key("sink[0].type"), "{flat:?}");
        assert_eq!(flat["window[0].aggregates"], toml::Value::Array(vec!["close".into()]));
    }
}
