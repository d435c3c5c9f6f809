//! `multiproc`: list, inspect, remove and garbage-collect the named shared-memory
//! objects of the `multiproc` crate (in `/dev/shm`, like `ipcs` for System V IPC).
//!
//! ```text
//! multiproc ls                  every object: name, kind, type, size, creator, ...
//! multiproc inspect NAME        header fields, validation and live state
//! multiproc rm [--force] NAME…  remove objects (refuses objects in use unless --force)
//! multiproc gc [--dry-run]      remove orphans (creator gone, not persisted, unused)
//! ```
//!
//! `--json` (anywhere on the line) prints JSON instead of text, with these stable
//! field names:
//! * `ls`: an array of objects `{name, kind, element_type, bytes, owner_uid,
//!   creator_pid, creator_alive, in_use, persisted, orphan, created_at, age_secs,
//!   status, detail}` (`kind` is null when unknown, `created_at` in seconds since the
//!   Unix epoch or null, `status` one of `ready`/`initialising`/`corrupt`/`unreadable`,
//!   `detail` null unless corrupt or unreadable);
//! * `inspect`: the `ls` fields plus `header` (an object of the header's fields, as
//!   strings), `valid` (bool), `error` (null or why it does not open) and `state`
//!   (an object of the kind's live fields, as strings);
//! * `rm`: `{removed: [names], errors: [{name, error}]}`;
//! * `gc`: `{removed: [names], dry_run: bool}` (with `--dry-run`, what would go).
//!
//! Exit status: 0 on success (`inspect` of a corrupt object is a successful report:
//! see `valid`), 1 when an object is missing, in use (`rm` without `--force`) or an
//! operation fails, 2 for a usage error. Errors go to stderr.

use clap::{Parser, Subcommand};
use multiproc::segment::{inspect, Inspection, ObjectInfo, Status};
use serde_json::{json, Map, Value};
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Parser, Debug)]
#[command(
    name = "multiproc",
    version,
    about = "List, inspect and clean up multiproc's named shared-memory objects"
)]
struct Cli {
    /// Print JSON (stable field names; see the crate's docs of the tool).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every object: name, kind, element type, size, creator, whether it is
    /// alive, in use, persisted, and its age.
    Ls,
    /// Show an object's header, whether it is valid, and its live state.
    Inspect {
        /// The object's name.
        name: String,
    },
    /// Remove objects by name. Refuses an object some process has open, unless
    /// --force (its users keep their mapping; new opens fail).
    Rm {
        /// Remove even objects in use.
        #[arg(long)]
        force: bool,
        /// The objects' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove orphans: objects whose creator is gone, not persisted, and open in no
    /// live process.
    Gc {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("multiproc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> multiproc::Result<ExitCode> {
    match &cli.command {
        Command::Ls => {
            let all = multiproc::list()?;
            if cli.json {
                let v: Vec<Value> = all.iter().map(info_json).collect();
                print_json(&Value::Array(v));
            } else {
                print_table(&all);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { name } => {
            let i = inspect(name)?;
            if cli.json {
                print_json(&inspection_json(&i));
            } else {
                print_inspection(&i);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rm { force, names } => {
            let mut removed = Vec::new();
            let mut errors = Vec::new();
            for name in names {
                match remove(name, *force) {
                    Ok(()) => removed.push(name.clone()),
                    Err(e) => {
                        eprintln!("multiproc: {e}");
                        errors.push(json!({"name": name, "error": e}));
                    }
                }
            }
            if cli.json {
                print_json(&json!({"removed": removed, "errors": errors}));
            } else {
                for n in &removed {
                    println!("removed {n}");
                }
            }
            Ok(if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Gc { dry_run } => {
            let removed: Vec<String> = if *dry_run {
                multiproc::list()?
                    .into_iter()
                    .filter(ObjectInfo::collectable)
                    .map(|i| i.name)
                    .collect()
            } else {
                multiproc::gc()?
            };
            if cli.json {
                print_json(&json!({"removed": removed, "dry_run": dry_run}));
            } else {
                let verb = if *dry_run { "would remove" } else { "removed" };
                for n in &removed {
                    println!("{verb} {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `rm` of one name: refuses an object in use unless `force`.
fn remove(name: &str, force: bool) -> Result<(), String> {
    let i = multiproc::segment::info(name).map_err(|e| e.to_string())?;
    if i.in_use && !force {
        return Err(format!(
            "'{name}' is in use by a live process: not removed (pass --force to remove \
             the name anyway; its users keep their mapping)"
        ));
    }
    multiproc::unlink(name).map_err(|e| e.to_string())
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON values always serialize")
    );
}

fn age_secs(i: &ObjectInfo) -> Option<f64> {
    let t = i.created_at?;
    Some(
        SystemTime::now()
            .duration_since(t)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

fn detail(s: &Status) -> Option<&str> {
    match s {
        Status::Corrupt { detail } | Status::Unreadable { detail } => Some(detail),
        _ => None,
    }
}

fn info_json(i: &ObjectInfo) -> Value {
    json!({
        "name": i.name,
        "kind": i.kind.map(|k| k.name()),
        "element_type": i.element_type,
        "bytes": i.bytes,
        "owner_uid": i.owner_uid,
        "creator_pid": i.creator_pid,
        "creator_alive": i.creator_alive,
        "in_use": i.in_use,
        "persisted": i.persisted,
        "orphan": i.orphan,
        "created_at": i.created_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()),
        "age_secs": age_secs(i),
        "status": i.status.as_str(),
        "detail": detail(&i.status),
    })
}

fn fields(f: &[(&str, String)]) -> Value {
    let mut m = Map::new();
    for (k, v) in f {
        m.insert((*k).to_owned(), Value::String(v.clone()));
    }
    Value::Object(m)
}

fn inspection_json(i: &Inspection) -> Value {
    let mut v = info_json(&i.info);
    let m = v.as_object_mut().expect("info_json makes an object");
    m.insert("header".to_owned(), fields(&i.header));
    m.insert("valid".to_owned(), Value::Bool(i.invalid.is_none()));
    m.insert("error".to_owned(), json!(i.invalid));
    m.insert("state".to_owned(), fields(&i.state));
    v
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn age(i: &ObjectInfo) -> String {
    let Some(s) = age_secs(i) else {
        return "-".to_owned();
    };
    let s = s as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn print_table(all: &[ObjectInfo]) {
    let rows: Vec<[String; 10]> = all
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.kind_name().to_owned(),
                i.element_type.clone(),
                i.bytes.to_string(),
                if i.creator_pid == 0 {
                    "-".to_owned()
                } else {
                    i.creator_pid.to_string()
                },
                yes(i.creator_alive).to_owned(),
                yes(i.in_use).to_owned(),
                yes(i.persisted).to_owned(),
                age(i),
                if i.orphan {
                    format!("{} (orphan)", i.status.as_str())
                } else {
                    i.status.as_str().to_owned()
                },
            ]
        })
        .collect();
    let head = [
        "NAME",
        "KIND",
        "TYPE",
        "BYTES",
        "CREATOR",
        "ALIVE",
        "IN-USE",
        "PERSISTED",
        "AGE",
        "STATUS",
    ];
    let mut w = head.map(str::len);
    for r in &rows {
        for (k, c) in r.iter().enumerate() {
            w[k] = w[k].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{c:<width$}", width = w[k]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(head.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_inspection(i: &Inspection) {
    let o = &i.info;
    println!("name:       {}", o.name);
    println!("kind:       {}", o.kind_name());
    println!("type:       {}", o.element_type);
    println!("bytes:      {}", o.bytes);
    println!(
        "creator:    {} ({})",
        o.creator_pid,
        if o.creator_alive { "alive" } else { "gone" }
    );
    println!("in use:     {}", yes(o.in_use));
    println!("persisted:  {}", yes(o.persisted));
    println!("orphan:     {}", yes(o.orphan));
    println!("age:        {}", age(o));
    match &i.invalid {
        None => println!("valid:      yes"),
        Some(e) => println!("valid:      no: {e}"),
    }
    if !i.state.is_empty() {
        println!("state:");
        for (k, v) in &i.state {
            println!("  {k:<22} {v}");
        }
    }
    if !i.header.is_empty() {
        println!("header:");
        for (k, v) in &i.header {
            println!("  {k:<22} {v}");
        }
    }
}
