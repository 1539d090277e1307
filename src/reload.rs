//! Reloading a running job's config file (SIGHUP, `systemctl reload`): what is safe to change live is applied,
//! every other key that changed is named as needing a restart, and the running values are kept.
//!
//! Applied live: `[alerts]` (the rules sit behind a lock the metrics thread reads at each check) and
//! `[log] filter`. Anything else — sources, windows, sinks, threads, the metrics endpoint, checkpoints — is built
//! into threads and rings at the start, so a change there waits for the next start. A file that no longer
//! reads or validates changes nothing: its error (key, line, reason) is logged and the job runs on as it was.

use crate::config::{self, AlertsConfig, Plan};
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

/// Whether a change of `key` is applied while the job runs.
fn live(key: &str) -> bool {
    key == "alerts" || key.starts_with("alerts.") || key == "log.filter"
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
        let (applied, need_restart): (Vec<String>, Vec<String>) = changed.into_iter().partition(|k| live(k));
        let mut out = Outcome { applied, need_restart, error: None };
        if let Err(error) = self.apply(&plan, &out.applied) {
            tracing::error!(config = %origin, "reload: {error}; the running config is kept");
            return Outcome { error: Some(error), ..Outcome::default() };
        }
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

    fn apply(&self, plan: &Plan, applied: &[String]) -> Result<(), String> {
        if applied.iter().any(|k| k == "log.filter") {
            let filter = plan.log.filter.as_deref().unwrap_or(&self.default_log);
            (self.set_log)(filter).map_err(|e| format!("log.filter `{filter}`: {e}"))?;
        }
        if applied.iter().any(|k| k != "log.filter") {
            *self.alerts.lock().unwrap_or_else(|p| p.into_inner()) = plan.alerts.clone();
        }
        Ok(())
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
    fn arrays_of_tables_are_indexed() {
        let flat = flatten(&toml::from_str(JOB).unwrap());
        assert!(flat.contains_key("window[0].size") && flat.contains_key("sink[0].type"), "{flat:?}");
        assert_eq!(flat["window[0].aggregates"], toml::Value::Array(vec!["close".into()]));
    }
}
