//! A debugging session on one process: the public face of the engine.
//!
//! [`Session`] resolves locations and value paths against the target's DWARF (on the caller's
//! thread, never on the ptrace thread), hands the engine plain addresses and value plans, keeps
//! pending probes for libraries not loaded yet, and renders hits on the consumer's thread.
//!
//! Threads: the caller's; the engine's ptrace thread; and a router thread that receives the
//! engine's events, plants pending probes when libraries appear (while the loading thread is
//! held), and forwards everything else to [`Session::events`].

use crate::addr::RuntimeAddr;
use crate::debuginfo::{DebugSearch, ModuleSymbols, Site, SymbolError};
use crate::engine::{
    AttachInfo, DetachReport, EngineError, EngineHandle, EngineStats, Event, ExecPolicy, HitRecord,
    Launch, PlantRequest, PlantSite, ProbeCounts, ProbeId, ProbeKind,
};
use crate::location::{LocationError, LocationSpec, module_matches};
use crate::modules::{self, Module};
use crate::plan::{TypeDesc, Value};
use crate::template::{Part, Template, TemplateError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Options of a session.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Where separate debug files are looked for.
    pub debug: DebugSearch,
    /// What to do when the target calls exec.
    pub exec_policy: ExecPolicy,
    /// The share of wall time the target's threads may spend stopped by scry.
    pub overhead: crate::quota::OverheadBudget,
    /// How long the engine polls for the next stop after a hit before sleeping in waitpid
    /// (docs/performance.md has the measurements behind the default).
    pub spin_after_hit: std::time::Duration,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            debug: DebugSearch::default(),
            exec_policy: ExecPolicy::Detach,
            overhead: crate::quota::OverheadBudget::default(),
            spin_after_hit: std::time::Duration::ZERO,
        }
    }
}

/// A probe to set.
#[derive(Clone, Debug, Default)]
pub struct ProbeSpec {
    /// Where: `file.c:42`, `function`, `libname.so:file.c:42`.
    pub location: String,
    /// What to print: literal text with `{value}` holes.
    pub template: String,
    /// Unplant after this many hits.
    pub max_hits: Option<u64>,
    /// Report a hit only when this expression is true (see docs/expressions.md).
    pub condition: Option<String>,
    /// Take a snapshot at each hit instead of a log line (the template is then ignored).
    pub snapshot: Option<SnapshotSpec>,
    /// Only count the hits (a counter): no line per hit; see [`Session::counts`].
    pub count_only: bool,
    /// Rates and expiry (docs/quotas.md); `max_hits` above is the hit bound.
    pub quota: crate::quota::Quota,
}

/// What a snapshot probe captures.
#[derive(Clone, Debug, Default)]
pub struct SnapshotSpec {
    /// Expressions to evaluate and show besides the frames' variables.
    pub watches: Vec<String>,
    /// Bounds.
    pub limits: crate::snapshot::SnapshotLimits,
}

/// One address a probe resolved to.
#[derive(Clone, Debug)]
pub struct ResolvedSite {
    /// Where the int3 is.
    pub addr: RuntimeAddr,
    /// The module's path.
    pub module: PathBuf,
    /// What the symbol layer says about it.
    pub site: Site,
}

/// What setting a probe did.
#[derive(Clone, Debug)]
pub struct ProbeInfo {
    /// The probe's id.
    pub id: ProbeId,
    /// The location as given.
    pub location: String,
    /// Where it is planted now.
    pub sites: Vec<ResolvedSite>,
    /// True if it waits for a library that is not loaded yet.
    pub pending: bool,
}

/// Why a probe could not be set. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("in the condition at {at}: {rendered}")]
    Condition { at: String, rendered: String },
    #[error("in the watch expression at {at}: {rendered}")]
    Watch { at: String, rendered: String },
    #[error("in the template's {{…}} at {at}: {rendered}")]
    Hole { at: String, rendered: String },
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    /// The message includes the engine's (so it is not also a `source`, which would print
    /// it twice in an error chain).
    #[error("cannot plant '{location}': {cause}")]
    Engine {
        location: String,
        cause: EngineError,
    },
    #[error(
        "no module named '{name}' is loaded in process {pid}, and it does not look like a shared library that could be loaded later. Loaded modules: {loaded}"
    )]
    NoSuchModule {
        name: String,
        pid: i32,
        loaded: String,
    },
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Other(String),
}

/// A hit, rendered for people and for JSON.
#[derive(Clone, Debug)]
pub struct RenderedHit {
    /// `file:line` of the site (or `function+0xoff` without DWARF).
    pub location: String,
    /// The function at the site.
    pub function: String,
    /// The template filled in.
    pub message: String,
    /// Each hole's text and value, in order.
    pub values: Vec<(String, Value)>,
}

struct ProbeEntry {
    spec: LocationSpec,
    text: String,
    template: Template,
    max_hits: Option<u64>,
    condition: Option<String>,
    snapshot: Option<SnapshotSpec>,
    count_only: bool,
    quota: crate::quota::Quota,
    /// Per site: the compiled watch expressions (snapshot probes).
    watches: Vec<Vec<(String, crate::expr::compile::WatchPlan)>>,
    /// Per site, in the engine's site order: where it is and the types of its holes.
    sites: Vec<(ResolvedSite, Vec<TypeDesc>)>,
    /// Per site: the types of the expression holes' words (with the module's symbols, to
    /// name enumerators).
    expr_types: Vec<(Arc<ModuleSymbols>, Vec<crate::expr::compile::Ty>)>,
    /// Waiting for a module with this name.
    pending: Option<String>,
}

/// Something the router must do at a given time.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Timer {
    /// End the probe: its expiry (the duration since it was set).
    Expire(std::time::Duration),
    /// Plant a paused probe again.
    Rearm,
}

struct State {
    /// (when, probe, what), in no particular order.
    timers: Vec<(std::time::Instant, ProbeId, Timer)>,
    modules: Vec<Module>,
    symbols: HashMap<PathBuf, Arc<ModuleSymbols>>,
    probes: HashMap<ProbeId, ProbeEntry>,
    next_id: ProbeId,
    link_map_watched: bool,
}

struct Shared {
    pid: i32,
    main_exe: Option<PathBuf>,
    options: SessionOptions,
    engine: EngineHandle,
    state: Mutex<State>,
}

/// An attached process.
pub struct Session {
    shared: Arc<Shared>,
    events: Receiver<Event>,
    router: Option<std::thread::JoinHandle<()>>,
    info: AttachInfo,
    held: Option<i32>,
}

impl Session {
    /// Attaches to a running process (PTRACE_SEIZE: no thread stops).
    pub fn attach(pid: i32, options: SessionOptions) -> Result<Session, SessionError> {
        let (engine, info, engine_events) =
            EngineHandle::start(Launch::Attach { pid }, options.exec_policy)?;
        let mut session = Session::new(engine, info, options);
        session.watch_link_map();
        session.start_router(engine_events);
        Ok(session)
    }

    /// Starts a program under scry. It is held at its entry point (libraries loaded, no code
    /// of the program run) until [`Session::resume`], so probes can be set first.
    pub fn spawn(
        program: &Path,
        args: &[String],
        options: SessionOptions,
    ) -> Result<Session, SessionError> {
        let launch = Launch::Spawn {
            program: program.to_path_buf(),
            args: args.to_vec(),
        };
        let (engine, info, engine_events) = EngineHandle::start(launch, options.exec_policy)?;
        let mut session = Session::new(engine, info, options);
        // Wait for the entry point.
        loop {
            match engine_events.recv_timeout(Duration::from_secs(30)) {
                Ok(Event::ModulesChanged { held }) => {
                    session.held = held;
                    break;
                }
                Ok(Event::Exited { code, signal }) => {
                    return Err(SessionError::Other(format!(
                        "{} exited before reaching its entry point (code {code:?}, signal {signal:?})",
                        program.display()
                    )));
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(SessionError::Other(format!(
                        "{} did not reach its entry point",
                        program.display()
                    )));
                }
            }
        }
        session.refresh_modules();
        session.watch_link_map();
        session.start_router(engine_events);
        Ok(session)
    }

    fn new(engine: EngineHandle, info: AttachInfo, options: SessionOptions) -> Session {
        let pid = info.pid;
        let main_exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| {
                PathBuf::from(
                    p.to_string_lossy()
                        .trim_end_matches(" (deleted)")
                        .to_string(),
                )
            });
        let state = State {
            timers: Vec::new(),
            modules: Vec::new(),
            symbols: HashMap::new(),
            probes: HashMap::new(),
            next_id: 1,
            link_map_watched: false,
        };
        let _ = engine.set_budget(options.overhead);
        let _ = engine.set_spin(options.spin_after_hit);
        let shared = Arc::new(Shared {
            pid,
            main_exe,
            options,
            engine,
            state: Mutex::new(state),
        });
        let session = Session {
            shared,
            events: mpsc::channel().1,
            router: None,
            info,
            held: None,
        };
        session.refresh_modules();
        session
    }

    fn refresh_modules(&self) {
        refresh_modules(&self.shared);
    }

    fn watch_link_map(&self) {
        watch_link_map(&self.shared);
    }

    fn start_router(&mut self, engine_events: Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        self.events = rx;
        let shared = self.shared.clone();
        self.router = std::thread::Builder::new()
            .name("scry-router".into())
            .spawn(move || route(shared, engine_events, tx))
            .ok();
    }

    /// Lets a spawned program run (no-op for an attached one).
    pub fn resume(&mut self) -> Result<(), SessionError> {
        if let Some(tid) = self.held.take() {
            self.shared.engine.release(tid)?;
        }
        Ok(())
    }

    /// The target's pid.
    pub fn pid(&self) -> i32 {
        self.shared.pid
    }

    /// What attaching found.
    pub fn attach_info(&self) -> &AttachInfo {
        &self.info
    }

    /// Events: hits, probe state changes, exec, exit, warnings.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The engine's counters.
    pub fn stats(&self) -> Result<EngineStats, SessionError> {
        Ok(self.shared.engine.stats()?)
    }

    /// Every probe's counters (executions, hits, stop time, pauses): a counter probe's value.
    pub fn counts(&self) -> Result<Vec<(ProbeId, ProbeCounts)>, SessionError> {
        Ok(self.shared.engine.counts()?)
    }

    /// Resolves and plants a probe. Typos in the location or the template, unknown
    /// variables, and lines without code are errors here, before anything is planted.
    pub fn add_probe(&self, spec: &ProbeSpec) -> Result<ProbeInfo, ProbeError> {
        let location = LocationSpec::parse(&spec.location)?;
        let template = Template::parse(&spec.template)?;
        let shared = &self.shared;
        let mut state = shared.state.lock().unwrap();
        let id = state.next_id;
        state.next_id += 1;
        let mut entry = ProbeEntry {
            spec: location.clone(),
            text: spec.location.clone(),
            template,
            max_hits: spec.max_hits,
            condition: spec.condition.clone(),
            snapshot: spec.snapshot.clone(),
            count_only: spec.count_only,
            quota: spec.quota,
            watches: Vec::new(),
            expr_types: Vec::new(),
            sites: Vec::new(),
            pending: None,
        };
        let resolution = resolve(shared, &mut state, &location)?;
        if let Some(after) = spec.quota.expiry {
            state
                .timers
                .push((std::time::Instant::now() + after, id, Timer::Expire(after)));
        }
        if spec.snapshot.is_some() {
            // A snapshot unwinds through every module: load their symbols now, not while the
            // thread is held at the first hit.
            for m in state.modules.clone() {
                let _ = symbols_locked(shared, &mut state, &m);
            }
        }
        match resolution {
            Resolution::Pending(module) => {
                entry.pending = Some(module);
                state.probes.insert(id, entry);
                Ok(ProbeInfo {
                    id,
                    location: spec.location.clone(),
                    sites: Vec::new(),
                    pending: true,
                })
            }
            Resolution::Sites(sites) => {
                let req = lower(shared, &mut state, id, &mut entry, sites)?;
                let planted: Vec<ResolvedSite> =
                    entry.sites.iter().map(|(s, _)| s.clone()).collect();
                state.probes.insert(id, entry);
                drop(state);
                if let Err(e) = shared.engine.plant(req) {
                    shared.state.lock().unwrap().probes.remove(&id);
                    return Err(ProbeError::Engine {
                        location: spec.location.clone(),
                        cause: e,
                    });
                }
                Ok(ProbeInfo {
                    id,
                    location: spec.location.clone(),
                    sites: planted,
                    pending: false,
                })
            }
        }
    }

    /// Removes a probe (its int3s go at once).
    pub fn remove_probe(&self, id: ProbeId) -> Result<(), SessionError> {
        self.shared.state.lock().unwrap().probes.remove(&id);
        Ok(self.shared.engine.unplant(id)?)
    }

    /// Turns a hit's raw bytes into a message and named values. Runs on the caller's thread.
    pub fn render(&self, hit: &HitRecord) -> RenderedHit {
        self.render_hiding(hit, &|_| false)
    }

    /// Like [`Session::render`], with the holes whose text `hide` matches shown as
    /// `[redacted]` in the message and the values (the agent's redaction rules by name:
    /// `{p->password}`).
    pub fn render_hiding(&self, hit: &HitRecord, hide: &dyn Fn(&str) -> bool) -> RenderedHit {
        let state = self.shared.state.lock().unwrap();
        let Some(probe) = state.probes.get(&hit.probe) else {
            return RenderedHit {
                location: "?".into(),
                function: "?".into(),
                message: String::new(),
                values: Vec::new(),
            };
        };
        let (site, types) = match probe.sites.get(hit.site as usize) {
            Some((s, t)) => (Some(s), t.as_slice()),
            None => (None, &[][..]),
        };
        let mut message = String::new();
        let mut values = Vec::new();
        let mut k = 0;
        let mut j = 0;
        let expr_types = probe.expr_types.get(hit.site as usize);
        for part in &probe.template.parts {
            match part {
                Part::Literal(text) => message.push_str(text),
                Part::Hole(path) => {
                    let value = match (types.get(k), hit.values.get(k)) {
                        (Some(ty), Some(fetched)) => crate::value::render(ty, fetched),
                        _ => Value::Opaque("?".into()),
                    };
                    let value = if hide(&path.text) { redacted() } else { value };
                    message.push_str(&display_with(&value, path.spec));
                    values.push((path.text.clone(), value));
                    k += 1;
                }
                Part::Expr(hole) => {
                    let value = match (
                        expr_types.and_then(|(s, t)| t.get(j).map(|t| (s, t))),
                        hit.exprs.get(j),
                    ) {
                        (
                            Some((symbols, ty)),
                            Some(crate::vm::Outcome::Done { top: Some(w), .. }),
                        ) => word_value(symbols, ty, *w),
                        (_, Some(crate::vm::Outcome::Failed(crate::vm::Fault::OptimizedOut))) => {
                            Value::OptimizedOut
                        }
                        (_, Some(crate::vm::Outcome::Failed(crate::vm::Fault::Unreadable(a)))) => {
                            Value::Unreadable(*a)
                        }
                        (_, Some(crate::vm::Outcome::Failed(f))) => {
                            Value::Unavailable(f.to_string())
                        }
                        _ => Value::Opaque("?".into()),
                    };
                    let value = if hide(&hole.text) { redacted() } else { value };
                    message.push_str(&display_with(&value, hole.spec));
                    values.push((hole.text.clone(), value));
                    j += 1;
                }
            }
        }
        let (location, function) = match site {
            Some(s) if s.site.line != 0 => {
                let file = s.site.file.rsplit('/').next().unwrap_or(&s.site.file);
                (format!("{file}:{}", s.site.line), s.site.function.clone())
            }
            Some(s) => (probe.text.clone(), s.site.function.clone()),
            None => (probe.text.clone(), String::new()),
        };
        RenderedHit {
            location,
            function,
            message,
            values,
        }
    }

    /// The location text a probe was set with.
    pub fn probe_location(&self, id: ProbeId) -> Option<String> {
        self.shared
            .state
            .lock()
            .unwrap()
            .probes
            .get(&id)
            .map(|p| p.text.clone())
    }

    /// Removes every probe and detaches from every thread; the target runs on as if scry had
    /// never been there.
    pub fn detach(mut self) -> Result<DetachReport, SessionError> {
        let report = self.shared.engine.detach();
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
        Ok(report?)
    }
}

enum Resolution {
    Sites(Vec<(usize, Site)>),
    Pending(String),
}

fn refresh_modules(shared: &Shared) -> (Vec<Module>, Vec<Module>) {
    let maps = crate::procfs::read_maps(shared.pid).unwrap_or_default();
    let fresh = modules::modules_from_maps(shared.pid, &maps, shared.main_exe.as_deref());
    let mut state = shared.state.lock().unwrap();
    let added: Vec<Module> = fresh
        .iter()
        .filter(|m| {
            !state
                .modules
                .iter()
                .any(|o| o.path == m.path && o.start == m.start)
        })
        .cloned()
        .collect();
    let removed: Vec<Module> = state
        .modules
        .iter()
        .filter(|o| !fresh.iter().any(|m| o.path == m.path && o.start == m.start))
        .cloned()
        .collect();
    state.modules = fresh;
    (added, removed)
}

fn watch_link_map(shared: &Shared) {
    let main = {
        let state = shared.state.lock().unwrap();
        if state.link_map_watched {
            return;
        }
        state.modules.iter().find(|m| m.is_main).cloned()
    };
    let Some(main) = main else { return };
    let Some(dynamic) = modules::dynamic_vaddr(&main.read_path) else {
        return;
    }; // static: no dlopen
    let Ok(symbols) = symbols_for(shared, &main) else {
        return;
    };
    let bias = modules::bias(&main, symbols.segments());
    let dynamic = crate::addr::FileAddr(dynamic).to_runtime(bias);
    let Some(r_debug) = modules::find_r_debug(shared.pid, dynamic) else {
        return;
    };
    let Some(r_brk) = modules::read_r_brk(shared.pid, r_debug) else {
        return;
    };
    if shared.engine.watch_link_map(r_debug, r_brk).is_ok() {
        shared.state.lock().unwrap().link_map_watched = true;
    }
}

fn symbols_for(shared: &Shared, module: &Module) -> Result<Arc<ModuleSymbols>, SymbolError> {
    if let Some(s) = shared.state.lock().unwrap().symbols.get(&module.path) {
        return Ok(s.clone());
    }
    let loaded = Arc::new(ModuleSymbols::load(
        &module.read_path,
        &shared.options.debug,
    )?);
    shared
        .state
        .lock()
        .unwrap()
        .symbols
        .insert(module.path.clone(), loaded.clone());
    Ok(loaded)
}

/// Symbols while the state lock is held (loading happens under the lock; it is rare).
fn symbols_locked(
    shared: &Shared,
    state: &mut State,
    module: &Module,
) -> Result<Arc<ModuleSymbols>, SymbolError> {
    if let Some(s) = state.symbols.get(&module.path) {
        return Ok(s.clone());
    }
    let loaded = Arc::new(ModuleSymbols::load(
        &module.read_path,
        &shared.options.debug,
    )?);
    state.symbols.insert(module.path.clone(), loaded.clone());
    Ok(loaded)
}

fn resolve(
    shared: &Shared,
    state: &mut State,
    loc: &LocationSpec,
) -> Result<Resolution, ProbeError> {
    let candidates: Vec<(usize, Module)> = match loc.module() {
        Some(name) => {
            let found: Vec<(usize, Module)> = state
                .modules
                .iter()
                .enumerate()
                .filter(|(_, m)| module_matches(&m.path.to_string_lossy(), name))
                .map(|(i, m)| (i, m.clone()))
                .collect();
            if found.is_empty() {
                if name.ends_with(".so") || name.contains(".so.") {
                    return Ok(Resolution::Pending(name.to_string()));
                }
                let loaded: Vec<String> = state
                    .modules
                    .iter()
                    .map(|m| {
                        m.path
                            .file_name()
                            .map(|f| f.to_string_lossy().to_string())
                            .unwrap_or_default()
                    })
                    .collect();
                return Err(ProbeError::NoSuchModule {
                    name: name.into(),
                    pid: shared.pid,
                    loaded: loaded.join(", "),
                });
            }
            found
        }
        None => state
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.clone()))
            .collect(),
    };
    let mut sites = Vec::new();
    // The main executable's error is the one to show, unless it only says "not here" and a
    // library has the file but not the line.
    let mut main_error: Option<SymbolError> = None;
    let mut lib_error: Option<SymbolError> = None;
    for (idx, module) in &candidates {
        // Without a module prefix, the main executable answers first: when it has the
        // location, the libraries (libc and friends) are not searched at all.
        // Then each library in load order, and the first that has it answers (the order the
        // dynamic linker resolves symbols in): libc's DWARF is not indexed for `shared_fn`.
        if loc.module().is_none() && !sites.is_empty() {
            break;
        }
        let slot = if module.is_main || loc.module().is_some() {
            &mut main_error
        } else {
            &mut lib_error
        };
        let symbols = match symbols_locked(shared, state, module) {
            Ok(s) => s,
            Err(e) => {
                if module.is_main || loc.module().is_some() {
                    slot.get_or_insert(e);
                }
                continue;
            }
        };
        let result = match loc {
            LocationSpec::Line { file, line, .. } => {
                if !symbols.has_dwarf() && !module.is_main && loc.module().is_none() {
                    continue; // a library without DWARF cannot hold the file
                }
                symbols.resolve_line(file, *line)
            }
            LocationSpec::Function { name, .. } => symbols.resolve_function(name),
            LocationSpec::FunctionEntry { name, .. } => {
                symbols.resolve_function_bounds(name, false)
            }
            LocationSpec::FunctionReturns { name, .. } => {
                symbols.resolve_function_bounds(name, true)
            }
        };
        match result {
            Ok(found) => sites.extend(found.into_iter().map(|s| (*idx, s))),
            Err(e) => {
                let keep = matches!(
                    (&slot, &e),
                    (None, _)
                        | (
                            Some(SymbolError::UnknownFile { .. }),
                            SymbolError::NoCodeAtLine { .. }
                        )
                );
                if keep {
                    *slot = Some(e);
                }
            }
        }
    }
    if sites.is_empty() {
        let not_here = |e: &Option<SymbolError>| {
            matches!(
                e,
                None | Some(SymbolError::UnknownFile { .. })
                    | Some(SymbolError::UnknownFunction { .. })
            )
        };
        let chosen = if not_here(&main_error)
            && matches!(lib_error, Some(SymbolError::NoCodeAtLine { .. }))
        {
            lib_error
        } else {
            main_error.or(lib_error)
        };
        return Err(match chosen {
            Some(e) => e.into(),
            None => SymbolError::UnknownFunction {
                name: loc.to_string(),
                binary: PathBuf::from("any loaded module"),
                hint: String::new(),
            }
            .into(),
        });
    }
    Ok(Resolution::Sites(sites))
}

/// Lowers resolved sites into a plant request, compiling every hole at every site.
fn lower(
    shared: &Shared,
    state: &mut State,
    id: ProbeId,
    entry: &mut ProbeEntry,
    sites: Vec<(usize, Site)>,
) -> Result<PlantRequest, ProbeError> {
    let mut req = PlantRequest {
        probe: id,
        sites: Vec::new(),
        kind: if entry.snapshot.is_some() {
            ProbeKind::Snapshot
        } else if entry.count_only {
            ProbeKind::Count
        } else {
            ProbeKind::Log
        },
        quota: crate::quota::Quota {
            max_hits: entry.max_hits,
            ..entry.quota
        },
        literal_bytes: entry
            .template
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(t) => t.len() as u32,
                _ => 0,
            })
            .sum(),
    };
    if let Some((idx, site)) = sites.first() {
        let module = state.modules[*idx].clone();
        let symbols = symbols_locked(shared, state, &module)?;
        let bias = modules::bias(&module, symbols.segments());
        route_holes(&symbols, site.addr, bias, &mut entry.template);
    }
    for (idx, site) in sites {
        let module = state.modules[idx].clone();
        let symbols = symbols_locked(shared, state, &module)?;
        let bias = modules::bias(&module, symbols.segments());
        let addr = site.addr.to_runtime(bias);
        let mut plans = Vec::new();
        let mut types = Vec::new();
        let condition = compile_condition(&symbols, site.addr, bias, entry.condition.as_deref())?;
        if let Some(snap) = &entry.snapshot {
            let mut watches = Vec::new();
            for w in &snap.watches {
                watches.push((w.clone(), compile_watch(&symbols, site.addr, bias, w)?));
            }
            entry.watches.push(watches);
        } else {
            for hole in entry.template.holes() {
                let (plan, ty) = symbols.compile_value(site.addr, hole, bias)?;
                plans.push(plan);
                types.push(ty);
            }
        }
        let mut exprs = Vec::new();
        let mut expr_types = Vec::new();
        for hole in entry.template.expr_holes() {
            let (program, ty) = compile_hole(&symbols, site.addr, bias, &hole.text)?;
            exprs.push(program);
            expr_types.push(ty);
        }
        entry.expr_types.push((symbols.clone(), expr_types));
        req.sites.push(PlantSite {
            addr,
            near: module.start,
            plans,
            condition,
            exprs,
        });
        entry.sites.push((
            ResolvedSite {
                addr,
                module: module.path.clone(),
                site,
            },
            types,
        ));
    }
    Ok(req)
}

/// Hands a value-path hole the fetch plans do not cover (a bitfield member, for one) to the
/// expression compiler, which does, when it compiles there; once, at the probe's first site,
/// so every site renders the same parts. A hole neither can do keeps its plan's error.
fn route_holes(
    symbols: &ModuleSymbols,
    pc: crate::addr::FileAddr,
    bias: crate::addr::Bias,
    template: &mut Template,
) {
    for part in template.parts.iter_mut() {
        let Part::Hole(path) = part else { continue };
        if matches!(
            symbols.compile_value(pc, path, bias),
            Err(SymbolError::Unsupported { .. })
        ) && compile_hole(symbols, pc, bias, &path.text).is_ok()
        {
            *part = Part::Expr(crate::template::ExprHole {
                text: path.text.clone(),
                spec: path.spec,
            });
        }
    }
}

/// Runs the timers that are due: expiries end probes, cooldowns re-arm them.
fn run_timers(shared: &Shared) -> std::time::Duration {
    let now = std::time::Instant::now();
    let due: Vec<(ProbeId, Timer)> = {
        let mut state = shared.state.lock().unwrap();
        let (due, later): (Vec<_>, Vec<_>) = state.timers.iter().partition(|(t, _, _)| *t <= now);
        state.timers = later;
        due.into_iter().map(|(_, p, k)| (p, k)).collect()
    };
    for (probe, timer) in due {
        let _ = match timer {
            Timer::Expire(after) => shared
                .engine
                .end_probe(probe, crate::engine::ProbeEnd::Expired { after }),
            Timer::Rearm => shared.engine.rearm(probe),
        };
    }
    // Wake again at the next timer, or in a while anyway.
    let state = shared.state.lock().unwrap();
    state
        .timers
        .iter()
        .map(|(t, _, _)| t.saturating_duration_since(now))
        .min()
        .unwrap_or(std::time::Duration::from_secs(1))
        .min(std::time::Duration::from_secs(1))
}

/// The router thread: plants pending probes when libraries appear, runs the quota timers
/// (expiry, re-arming paused probes), forwards the rest.
fn route(shared: Arc<Shared>, engine_events: Receiver<Event>, out: Sender<Event>) {
    // When the timers must be looked at next (also between events: a stream of hits must
    // not keep an expiry from coming).
    let mut next = std::time::Instant::now() + std::time::Duration::from_secs(1);
    // A receiver blocked in recv costs every send a futex wake-up — and the sender is the
    // engine thread, on the hit path. So while events flow the router does not block: it
    // takes what is there, then sleeps a little and takes the next batch (a send then wakes
    // nobody). After a quiet spell it blocks again, so an idle session costs nothing.
    const BATCH: std::time::Duration = std::time::Duration::from_millis(2);
    const QUIET: std::time::Duration = std::time::Duration::from_millis(200);
    let mut last_event = std::time::Instant::now() - QUIET;
    loop {
        let now = std::time::Instant::now();
        if now >= next {
            next = now + run_timers(&shared);
        }
        let event = match engine_events.try_recv() {
            Ok(e) => e,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            Err(std::sync::mpsc::TryRecvError::Empty)
                if now.saturating_duration_since(last_event) < QUIET =>
            {
                std::thread::sleep(BATCH);
                continue;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                match engine_events.recv_timeout(next.saturating_duration_since(now)) {
                    Ok(e) => e,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        last_event = std::time::Instant::now();
        match event {
            Event::ProbePaused {
                probe,
                reason,
                cooldown,
                counts,
            } => {
                shared.state.lock().unwrap().timers.push((
                    std::time::Instant::now() + cooldown,
                    probe,
                    Timer::Rearm,
                ));
                next = next.min(std::time::Instant::now() + cooldown);
                let _ = out.send(Event::ProbePaused {
                    probe,
                    reason,
                    cooldown,
                    counts,
                });
            }
            Event::ProbeEnded { probe, end } => {
                // Its timers die with it.
                shared
                    .state
                    .lock()
                    .unwrap()
                    .timers
                    .retain(|(_, p, _)| *p != probe);
                let _ = out.send(Event::ProbeEnded { probe, end });
            }
            Event::ModulesChanged { held } => {
                on_modules_changed(&shared, &out);
                if let Some(tid) = held {
                    let _ = shared.engine.release(tid);
                }
            }
            Event::SnapshotHit {
                probe,
                site,
                pid,
                tid,
                regs,
                fpregs,
                seq,
                time,
                release,
            } => {
                let started = std::time::Instant::now();
                let snapshot =
                    take_snapshot(&shared, probe, site as usize, pid, &regs, fpregs.as_deref());
                if release {
                    let _ = shared.engine.release(tid);
                }
                let held_us = started.elapsed().as_micros() as u64;
                let _ = out.send(Event::Snapshot(Box::new(crate::engine::SnapshotRecord {
                    probe,
                    pid,
                    tid,
                    time,
                    seq,
                    held_us,
                    snapshot,
                })));
            }
            other => {
                if out.send(other).is_err() {
                    // Nobody listens any more; keep draining so the engine never blocks.
                }
            }
        }
    }
}

fn on_modules_changed(shared: &Shared, out: &Sender<Event>) {
    let (added, removed) = refresh_modules(shared);
    for m in &removed {
        let _ = shared.engine.forget_range(m.start, m.end);
        shared.state.lock().unwrap().symbols.remove(&m.path);
    }
    watch_link_map(shared);
    if added.is_empty() {
        return;
    }
    let mut state = shared.state.lock().unwrap();
    let pending: Vec<ProbeId> = state
        .probes
        .iter()
        .filter(|(_, p)| {
            p.pending.as_deref().is_some_and(|name| {
                added
                    .iter()
                    .any(|m| module_matches(&m.path.to_string_lossy(), name))
            })
        })
        .map(|(id, _)| *id)
        .collect();
    for id in pending {
        let mut entry = state.probes.remove(&id).unwrap();
        let result = match resolve(shared, &mut state, &entry.spec) {
            Ok(Resolution::Sites(sites)) => {
                lower(shared, &mut state, id, &mut entry, sites).map_err(|e| e.to_string())
            }
            Ok(Resolution::Pending(_)) => {
                state.probes.insert(id, entry);
                continue;
            }
            Err(e) => Err(e.to_string()),
        };
        let module = entry.pending.take().unwrap_or_default();
        match result {
            Ok(req) => {
                let n = req.sites.len();
                state.probes.insert(id, entry);
                match shared.engine.plant(req) {
                    Ok(_) => {
                        let _ = out.send(Event::ProbePlanted {
                            probe: id,
                            sites: n,
                            module,
                        });
                    }
                    Err(e) => {
                        let _ = out.send(Event::Warning(format!(
                            "probe {id}: planting in {module} failed: {e}"
                        )));
                    }
                }
            }
            Err(e) => {
                let _ = out.send(Event::Warning(format!(
                    "probe {id} ({}): {module} loaded, but: {e}",
                    entry.text
                )));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropped without detach (an error path, a panic unwinding through the caller): still
        // put every byte back and let the target go.
        if self.shared.engine.is_attached() {
            let _ = self.shared.engine.detach();
        }
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
    }
}

/// The registers of unwound frame `i`: all of them in frame 0, the ones the unwinder
/// recovered in callers (the rest zero; `frame_known` says which are real).
fn frame_registers(
    regs: &libc::user_regs_struct,
    f: &crate::unwind::UnwindFrame,
    i: usize,
) -> libc::user_regs_struct {
    if i == 0 {
        return *regs;
    }
    // SAFETY: all-zero registers are a valid value.
    let mut frame_regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    for r in crate::regs::Reg::general() {
        if let Some(v) = f.regs.get(r) {
            r.write(&mut frame_regs, v);
        }
    }
    frame_regs.fs_base = regs.fs_base;
    frame_regs
}

/// True if register `r` of unwound frame `i` is known (see `frame_registers`).
fn frame_known(f: &crate::unwind::UnwindFrame, i: usize, r: crate::regs::Reg) -> bool {
    i == 0 || r == crate::regs::Reg::FsBase || f.regs.get(r).is_some()
}

/// What frame `i`'s function received in its argument registers, from the call site in
/// frame `i + 1` that returns into it, evaluated in that caller's frame (`caller_entry`:
/// the caller's own entry values). Empty when the site is unknown, names another function
/// (a tail call came between), or the function is reachable by tail calls.
fn recover_entry_values(
    pid: i32,
    frames: &[crate::unwind::UnwindFrame],
    i: usize,
    regs: &libc::user_regs_struct,
    modules: &[(Module, Arc<ModuleSymbols>)],
    caller_entry: &[(crate::regs::Reg, u64)],
) -> Vec<(crate::regs::Reg, u64)> {
    let (Some(f), Some(caller)) = (frames.get(i), frames.get(i + 1)) else {
        return Vec::new();
    };
    let (Some(mi), Some(ci)) = (f.module, caller.module) else {
        return Vec::new();
    };
    if f.signal_frame || caller.signal_frame {
        return Vec::new();
    }
    let (m, symbols) = &modules[mi];
    let is_caller = f.is_caller(if i > 0 { frames.get(i - 1) } else { None });
    let file_pc = crate::addr::RuntimeAddr(f.pc).to_file(modules::bias(m, symbols.segments()));
    let lookup = crate::addr::FileAddr(file_pc.0.wrapping_sub(is_caller as u64));
    let Some(function) = symbols.entered_function(lookup) else {
        return Vec::new();
    };
    let (cm, csymbols) = &modules[ci];
    let cbias = modules::bias(cm, csymbols.segments());
    let Some(site) = csymbols.call_site(crate::addr::RuntimeAddr(caller.pc).to_file(cbias), cbias)
    else {
        return Vec::new();
    };
    if site.tail_call || site.callee.as_deref() != Some(function.as_str()) {
        return Vec::new();
    }
    let caller_regs = frame_registers(regs, caller, i + 1);
    let known = |r: crate::regs::Reg| frame_known(caller, i + 1, r);
    let mut reader = crate::snapshot::Reader::new(pid, csymbols, Default::default());
    reader.entry_regs = caller_entry.to_vec();
    site.params
        .iter()
        .filter_map(|p| Some((p.reg, reader.call_value(&p.value, &caller_regs, &known)?)))
        .collect()
}

/// What a hidden value shows.
fn redacted() -> Value {
    Value::Str {
        text: "[redacted]".into(),
        truncated: false,
    }
}

/// Reads a snapshot of the held thread: unwinds its stack, reads the variables of the top
/// frames and the watch expressions.
fn take_snapshot(
    shared: &Shared,
    probe: ProbeId,
    site: usize,
    pid: i32,
    regs: &libc::user_regs_struct,
    fpregs: Option<&libc::user_fpregs_struct>,
) -> crate::snapshot::Snapshot {
    use crate::snapshot::{FrameSnap, Node, Reader, Snapshot, Status, Var};
    type Watches = Vec<(String, crate::expr::compile::WatchPlan)>;
    let (modules, spec, watches): (Vec<(Module, Arc<ModuleSymbols>)>, SnapshotSpec, Watches) = {
        let mut state = shared.state.lock().unwrap();
        let mods: Vec<Module> = state.modules.clone();
        let mut out = Vec::new();
        for m in mods {
            if let Ok(s) = symbols_locked(shared, &mut state, &m) {
                out.push((m, s));
            }
        }
        let entry = state.probes.get(&probe);
        let spec = entry.and_then(|e| e.snapshot.clone()).unwrap_or_default();
        let watches = entry
            .and_then(|e| e.watches.get(site).cloned())
            .unwrap_or_default();
        (out, spec, watches)
    };
    let limits = spec.limits;
    let unwind_modules: Vec<crate::unwind::UnwindModule> = modules
        .iter()
        .map(|(m, s)| crate::unwind::UnwindModule {
            start: m.start.0,
            end: m.end.0,
            bias: modules::bias(m, s.segments()).0,
            symbols: s,
        })
        .collect();
    let mut read = |addr: u64, buf: &mut [u8]| crate::ptrace::mem::read(pid, addr, buf).is_ok();
    let (frames, stop) = crate::unwind::unwind(regs, &mut read, &unwind_modules, limits.frames);
    let mut snap = Snapshot {
        frames: Vec::new(),
        watches: Vec::new(),
        stack_end: stop.to_string(),
        bytes_read: 0,
        truncated: false,
    };
    // Entry values (DW_OP_entry_value) of the frames whose variables are read, from their
    // callers' call sites; callers first, since a call value may itself be an entry value.
    let mut entry_regs: Vec<Vec<(crate::regs::Reg, u64)>> =
        vec![Vec::new(); frames.len().min(limits.frames_with_variables + 1)];
    for i in (0..entry_regs.len()).rev() {
        let outer = entry_regs.get(i + 1).cloned().unwrap_or_default();
        entry_regs[i] = recover_entry_values(pid, &frames, i, regs, &modules, &outer);
    }
    let mut bytes = 0;
    let mut truncated = false;
    for (i, f) in frames.iter().enumerate() {
        let is_caller = f.is_caller(if i > 0 { frames.get(i - 1) } else { None });
        let Some(mi) = f.module else {
            snap.frames.push(FrameSnap {
                index: snap.frames.len(),
                function: if f.signal_frame {
                    "<signal handler called>".into()
                } else {
                    "??".into()
                },
                file: None,
                line: None,
                pc: f.pc,
                module: None,
                inlined: false,
                signal_frame: f.signal_frame,
                has_variables: false,
                args: Vec::new(),
                locals: Vec::new(),
            });
            continue;
        };
        let (m, symbols) = &modules[mi];
        let bias = modules::bias(m, symbols.segments());
        let file_pc = crate::addr::RuntimeAddr(f.pc).to_file(bias);
        let names = crate::unwind::expand_inlined(symbols, file_pc, is_caller);
        let names = if names.is_empty() {
            vec![("??".to_string(), None, None)]
        } else {
            names
        };
        let lookup_pc = crate::addr::FileAddr(if is_caller {
            file_pc.0.wrapping_sub(1)
        } else {
            file_pc.0
        });
        let frame_regs = frame_registers(regs, f, i);
        let known = |r: crate::regs::Reg| frame_known(f, i, r);
        for (k, (function, file, line)) in names.iter().enumerate() {
            // Inlined frames too: the function a copy was inlined into has its own
            // arguments and locals (in the blocks around the inlined call).
            let with_vars = snap.frames.len() < limits.frames_with_variables && symbols.has_dwarf();
            let (args, locals) = if with_vars {
                let mut reader = Reader::new(
                    pid,
                    symbols,
                    crate::snapshot::SnapshotLimits {
                        total_bytes: limits.total_bytes.saturating_sub(bytes),
                        ..limits
                    },
                );
                if i == 0 {
                    reader.fpregs = fpregs.copied();
                }
                reader.entry_regs = entry_regs.get(i).cloned().unwrap_or_default();
                let r = crate::snapshot::frame_vars(
                    &mut reader,
                    lookup_pc,
                    k,
                    bias,
                    &frame_regs,
                    &known,
                );
                bytes += reader.bytes_read;
                truncated |= reader.truncated;
                r
            } else {
                (Vec::new(), Vec::new())
            };
            snap.frames.push(FrameSnap {
                index: snap.frames.len(),
                function: without_params(function),
                file: file.clone(),
                line: *line,
                pc: f.pc,
                module: m.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                inlined: k + 1 < names.len(),
                signal_frame: f.signal_frame,
                has_variables: with_vars,
                args,
                locals,
            });
        }
    }
    // Watch expressions, in the top frame.
    if let Some(mi) = frames.first().and_then(|f| f.module) {
        let (m, symbols) = &modules[mi];
        for (text, plan) in watches {
            let mut reader = Reader::new(
                pid,
                symbols,
                crate::snapshot::SnapshotLimits {
                    total_bytes: limits.total_bytes.saturating_sub(bytes),
                    ..limits
                },
            );
            reader.bias = modules::bias(m, symbols.segments());
            let ctx = crate::vm::HitContext {
                regs,
                pid,
                tid: pid,
                hits: 0,
                fpregs,
                entry_regs: None,
            };
            let mut mem = crate::vm::ProcessMemory { pid };
            let (value, ty) = match plan {
                crate::expr::compile::WatchPlan::Object { program, ty } => {
                    let out = crate::vm::run_all(
                        &[&program],
                        &ctx,
                        &mut mem,
                        crate::vm::Limits::default(),
                    )
                    .pop();
                    let v = match out {
                        Some(crate::vm::Outcome::Done {
                            top: Some(addr), ..
                        }) => reader.at(addr, ty, 0),
                        Some(crate::vm::Outcome::Failed(f)) => Node::Status(fault_status(f)),
                        _ => Node::Status(Status::Unavailable("no value".into())),
                    };
                    (v, symbols.type_name(ty))
                }
                crate::expr::compile::WatchPlan::Scalar { program, ty } => {
                    let out = crate::vm::run_all(
                        &[&program],
                        &ctx,
                        &mut mem,
                        crate::vm::Limits::default(),
                    )
                    .pop();
                    let v = match out {
                        Some(crate::vm::Outcome::Done { top: Some(w), .. }) => {
                            scalar_node(symbols, &ty, w)
                        }
                        Some(crate::vm::Outcome::Failed(f)) => Node::Status(fault_status(f)),
                        _ => Node::Status(Status::Unavailable("no value".into())),
                    };
                    (v, describe_ty(symbols, &ty))
                }
            };
            bytes += reader.bytes_read;
            truncated |= reader.truncated;
            snap.watches.push(Var {
                name: text,
                ty,
                value,
                shadowed: false,
            });
        }
    }
    snap.bytes_read = bytes;
    snap.truncated = truncated;
    snap
}

fn fault_status(f: crate::vm::Fault) -> crate::snapshot::Status {
    use crate::snapshot::Status;
    match f {
        crate::vm::Fault::Unreadable(a) => Status::Unreadable(a),
        crate::vm::Fault::OptimizedOut => Status::OptimizedOut,
        crate::vm::Fault::Unavailable(w) => Status::Unavailable(w),
        other => Status::Unavailable(other.to_string()),
    }
}

fn describe_ty(symbols: &ModuleSymbols, ty: &crate::expr::compile::Ty) -> String {
    match ty {
        crate::expr::compile::Ty::D(r) => symbols.type_name(*r),
        crate::expr::compile::Ty::Int {
            size: 8,
            signed: false,
        } => "unsigned long".into(),
        crate::expr::compile::Ty::Int {
            size: 8,
            signed: true,
        } => "long".into(),
        crate::expr::compile::Ty::Int {
            size: 4,
            signed: false,
        } => "unsigned int".into(),
        crate::expr::compile::Ty::Int { .. } => "int".into(),
        crate::expr::compile::Ty::Double => "double".into(),
        crate::expr::compile::Ty::Ptr(_) => "pointer".into(),
        crate::expr::compile::Ty::Rows { element, dims } => {
            format!("{} [{}]", symbols.type_name(*element), dims.len())
        }
        crate::expr::compile::Ty::Void => "void".into(),
    }
}

fn scalar_node(
    symbols: &ModuleSymbols,
    ty: &crate::expr::compile::Ty,
    w: u64,
) -> crate::snapshot::Node {
    use crate::expr::compile::Ty;
    use crate::snapshot::Node;
    match ty {
        Ty::D(r) => {
            let mut reader = crate::snapshot::Reader::new(0, symbols, Default::default());
            let size = symbols.type_size(*r).unwrap_or(8).min(8) as usize;
            reader.decode(&w.to_le_bytes()[..size], *r, 0)
        }
        Ty::Int { signed: true, .. } => Node::Int(w as i64),
        Ty::Int { signed: false, .. } => Node::Uint(w),
        Ty::Double => Node::Float(f64::from_bits(w)),
        Ty::Rows { .. } => Node::Status(crate::snapshot::Status::NotCaptured(
            "a row of a multi-dimensional array".into(),
        )),
        Ty::Ptr(_) | Ty::Void => Node::Pointer {
            addr: w,
            target: None,
            string: None,
            symbol: None,
        },
    }
}

/// A demangled C++ name without its parameter list, as gdb names frames:
/// `shop::price_order(shop::Order const&, int)` → `shop::price_order`. Template arguments
/// and `operator()` stay.
fn without_params(name: &str) -> String {
    let mut depth = 0i32;
    let b = name.as_bytes();
    for (i, c) in b.iter().enumerate() {
        match c {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b'(' if depth == 0 => {
                if name[..i].ends_with("operator") {
                    continue;
                }
                if i > 0 && b[i - 1] == b')' {
                    continue;
                }
                return name[..i].to_string();
            }
            _ => {}
        }
    }
    name.to_string()
}

/// A machine word of type `ty` as a value.
fn word_value(symbols: &ModuleSymbols, ty: &crate::expr::compile::Ty, w: u64) -> Value {
    use crate::expr::compile::{Compiler, Shape};
    let shape = Compiler::new(symbols, crate::addr::FileAddr(0), crate::addr::Bias(0)).shape(ty);
    match shape {
        Shape::Int { signed: true, .. } => Value::Int(w as i64),
        Shape::Int { signed: false, .. } => Value::Uint(w),
        Shape::Float { .. } => Value::Float(f64::from_bits(w)),
        Shape::Bool => Value::Bool(w != 0),
        Shape::Enum { enumerators, .. } => {
            let v = w as i64;
            Value::Enum {
                value: v,
                name: enumerators
                    .iter()
                    .find(|(e, _)| *e == v)
                    .map(|(_, n)| n.clone()),
            }
        }
        Shape::Ptr(_) | Shape::Array { .. } => Value::Pointer {
            addr: w,
            string: None,
        },
        _ => Value::Uint(w),
    }
}

/// A value as text, honouring a hole's format spec.
fn display_with(v: &Value, spec: Option<crate::template::Spec>) -> String {
    use crate::template::Spec;
    match (spec, v) {
        (Some(Spec::Hex), Value::Int(i)) => format!("{:#x}", *i as u64),
        (Some(Spec::Hex), Value::Uint(u)) => format!("{u:#x}"),
        (Some(Spec::Hex), Value::Char(c)) => format!("{:#x}", *c as u64),
        (Some(Spec::Hex), Value::Enum { value, .. }) => format!("{:#x}", *value as u64),
        (Some(Spec::Hex | Spec::Ptr), Value::Pointer { addr, .. }) => format!("{addr:#x}"),
        (Some(Spec::Dec), Value::Char(c)) => c.to_string(),
        (Some(Spec::Dec), Value::Enum { value, .. }) => value.to_string(),
        (Some(Spec::Dec), Value::Bool(b)) => (*b as u8).to_string(),
        (Some(Spec::Dec), Value::Pointer { addr, .. }) => addr.to_string(),
        (
            Some(Spec::Str),
            Value::Pointer {
                string: Some(s), ..
            },
        ) => match s.as_ref() {
            Value::Str { text, truncated } => {
                format!("{text}{}", if *truncated { "..." } else { "" })
            }
            other => crate::value::display(other),
        },
        (Some(Spec::Str), Value::Str { text, .. }) => text.clone(),
        _ => crate::value::display(v),
    }
}

/// `loop.c:62` for a site, for messages about expressions set there.
fn site_at(symbols: &ModuleSymbols, pc: crate::addr::FileAddr) -> String {
    let d = symbols.describe(pc);
    match (d.file, d.line) {
        (Some(f), Some(l)) => format!("{}:{l}", f.rsplit('/').next().unwrap_or(&f)),
        _ => format!("{pc}"),
    }
}

/// Parses an expression written for one site, type-checks and compiles it with `compile`;
/// a problem becomes the probe error `error(at, rendered)` quoting the expression with the
/// column marked.
fn compile_expr<T>(
    symbols: &ModuleSymbols,
    pc: crate::addr::FileAddr,
    bias: crate::addr::Bias,
    text: &str,
    error: fn(String, String) -> ProbeError,
    compile: impl FnOnce(
        crate::expr::compile::Compiler,
        &crate::expr::Expr,
    ) -> Result<T, crate::expr::ExprError>,
) -> Result<T, ProbeError> {
    let at = site_at(symbols, pc);
    let is_type = |name: &str| symbols.find_type(name).is_some();
    let expr = crate::expr::parse(text, &is_type).map_err(|e| error(at.clone(), e.render(text)))?;
    let compiler = crate::expr::compile::Compiler::new(symbols, pc, bias).with_source(text);
    compile(compiler, &expr).map_err(|e| error(at, e.render(text)))
}

/// A condition at one site, compiled for the hit path.
fn compile_condition(
    symbols: &ModuleSymbols,
    pc: crate::addr::FileAddr,
    bias: crate::addr::Bias,
    text: Option<&str>,
) -> Result<Option<crate::vm::Program>, ProbeError> {
    let Some(text) = text else { return Ok(None) };
    let error = |at, rendered| ProbeError::Condition { at, rendered };
    compile_expr(symbols, pc, bias, text, error, |c, e| {
        c.condition(e).map(|c| Some(c.program))
    })
}

/// A snapshot's watch expression at one site.
fn compile_watch(
    symbols: &ModuleSymbols,
    pc: crate::addr::FileAddr,
    bias: crate::addr::Bias,
    text: &str,
) -> Result<crate::expr::compile::WatchPlan, ProbeError> {
    let error = |at, rendered| ProbeError::Watch { at, rendered };
    compile_expr(symbols, pc, bias, text, error, |c, e| c.watch(e))
}

/// A template's expression hole at one site: a word and its type.
fn compile_hole(
    symbols: &ModuleSymbols,
    pc: crate::addr::FileAddr,
    bias: crate::addr::Bias,
    text: &str,
) -> Result<(crate::vm::Program, crate::expr::compile::Ty), ProbeError> {
    let error = |at, rendered| ProbeError::Hole { at, rendered };
    compile_expr(symbols, pc, bias, text, error, |c, e| {
        c.scalar(e).map(|c| (c.program, c.ty))
    })
}
